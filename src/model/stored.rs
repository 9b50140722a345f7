//! What the store keeps and hands back, in the shape the CLI, the outbox and the change feed
//! read it: text columns as stored, so nothing is re-parsed on the way out.

/// An order as the CLI shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredOrder {
    pub platform: String,
    pub order_id: String,
    pub number: String,
    pub status: String,
    pub platform_status: String,
    pub placed_at: Option<String>,
    pub updated_at: Option<String>,
    pub currency: Option<String>,
    pub total: Option<String>,
    pub customer_name: Option<String>,
    pub tracking_number: Option<String>,
    pub first_seen_at: String,
    pub last_seen_at: String,
    pub last_changed_at: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredItem {
    pub item_id: String,
    pub sku: Option<String>,
    pub name: Option<String>,
    pub quantity: String,
    pub unit_price: Option<String>,
    pub status: Option<String>,
}
