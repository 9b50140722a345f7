//! The declarative `rest` kind beyond the conformance suite: `check` on a description full of
//! mistakes, `doctor` showing a described platform's first record mapped field by field, and the
//! shipped example file.

use crate::common::{Setup, stderr, stdout};

/// A description with eleven typical mistakes, one per line marked `# (n)`.
const MISTAKES: &str = r#"
[platforms.bad]
kind = "rest"
base_url = "https://api.example.com"

[platforms.bad.auth]
client_id = "the-client"
client_secret = "the-secret"

[platforms.bad.api.auth]
style = "login"
path = "/oauth/token"
body = { client_id = "{auth.client_id}", client_secret = "{auth.password}" } # (1)
# (2) no `token`

[platforms.bad.api.list]
path = "v3/orders" # (3)
query = { updated_since = "{window.form}", per_page = "{limit}" } # (4)
filter = "modified" # (5)
time_format = "epoch_secs" # (6)

[platforms.bad.api.pages]
style = "next_link" # (7) without `next`

[platforms.bad.api.records]
list = "orders" # (8)
id = "/id"
placed_at = { pointer = "/created_at", format = "%Y-%m-%d %Q" } # (9)
totl = "/money/total" # (10)

[platforms.bad.api.push.sent] # (11)
method = "POST"
path = "/v3/orders/{order.id}/ship"
"#;

#[test]
fn check_names_every_mistake_in_a_description_with_its_file_and_key_at_once() {
    let setup = Setup::new();
    setup.add_platform_file("bad.toml", MISTAKES);

    let out = setup.ordersync(&["check"]);

    assert_eq!(out.status.code(), Some(78), "EX_CONFIG: {}", stderr(&out));
    let report = stderr(&out);
    let file = setup.dir.path().join("platforms.d/bad.toml");
    let file = file.display().to_string();
    let api = "platforms.bad.api";
    let expected = [
        (format!("{api}.auth.body.client_secret"), "auth key `password`"),
        (format!("{api}.auth.token"), "missing"),
        (format!("{api}.list.path"), "must start with `/`"),
        (format!("{api}.list.query.updated_since"), "did you mean `{window.from}`"),
        (format!("{api}.list.filter"), "not one of updated, created"),
        (format!("{api}.list.time_format"), "not a time format"),
        (format!("{api}.pages.next"), "next page's link"),
        (format!("{api}.records.list"), "must start with `/`"),
        (format!("{api}.records.placed_at.format"), "not a strftime pattern"),
        (format!("{api}.records.totl"), "did you mean `total`"),
        (format!("{api}.push.sent"), "not a canonical status"),
    ];
    for (key, message) in &expected {
        assert!(
            report
                .lines()
                .any(|l| l.contains(&format!("{file}: {key}: ")) && l.contains(message)),
            "no line names {file}: {key} with {message:?}:\n{report}"
        );
    }
    assert!(
        !report.contains("the-secret"),
        "no secret in the report:\n{report}"
    );
}

#[test]
fn the_shipped_descriptions_pass_check_as_they_are() {
    let setup = Setup::new();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/platforms.d");
    for file in [
        "rest-example.toml",
        "merchantpro-rest-example.toml",
        "sirclo-rest-example.toml",
    ] {
        setup.add_platform_file(file, &std::fs::read_to_string(repo.join(file)).unwrap());
    }

    let out = setup.ordersync(&["check"]);

    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = stdout(&out) + &stderr(&out);
    for name in ["novashop", "shop-ro-rest", "sirclo-id-rest"] {
        assert!(report.contains(name), "{name} is listed:\n{report}");
    }
}
