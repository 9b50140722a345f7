//! The layering of `src`, checked on every test run: each top-level module may use only the
//! modules of the layers below its own, so dependencies run one way and no import cycle can
//! form. The sources are parsed with `syn` (not grepped), so a path in a comment or a string
//! does not count, and code compiled only for unit tests (`#[cfg(test)]`) is left out: a
//! module's tests may reach up for real fixtures.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// Lowest first. A module may depend on any module of a lower layer, never on its own layer's
/// others or a higher one. `model` is the leaf; `config`, `telemetry` and `http` are the shared
/// foundations; `sync` and `outbox` are the two engines, independent of each other.
const LAYERS: &[&[&str]] = &[
    &["model"],
    &["config"],
    &["telemetry"],
    &["http"],
    &["store"],
    &["platforms"],
    &["sync", "outbox", "sinks"],
    &["verify"],
    &["daemon"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        (a.path().is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test")))
            || a.path().is_ident("test")
    })
}

/// The top-level modules one file names as `crate::<module>`.
#[derive(Default)]
struct Uses(BTreeSet<String>);

impl Uses {
    fn add(&mut self, first: &syn::Ident, second: Option<&syn::Ident>) {
        if first == "crate"
            && let Some(m) = second
        {
            self.0.insert(m.to_string());
        }
    }

    fn use_tree(&mut self, tree: &syn::UseTree, root: Option<&syn::Ident>) {
        match tree {
            syn::UseTree::Path(p) => match root {
                None => self.use_tree(&p.tree, Some(&p.ident)),
                Some(r) => self.add(r, Some(&p.ident)),
            },
            syn::UseTree::Name(n) => {
                if let Some(r) = root {
                    self.add(r, Some(&n.ident));
                }
            }
            syn::UseTree::Rename(n) => {
                if let Some(r) = root {
                    self.add(r, Some(&n.ident));
                }
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(t, root);
                }
            }
            syn::UseTree::Glob(_) => {}
        }
    }
}

impl<'ast> Visit<'ast> for Uses {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if !is_cfg_test(&u.attrs) {
            self.use_tree(&u.tree, None);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let mut segs = p.segments.iter();
        if let Some(first) = segs.next() {
            self.add(&first.ident, segs.next().map(|s| &s.ident));
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if !is_cfg_test(&m.attrs) {
            syn::visit::visit_item_mod(self, m);
        }
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !is_cfg_test(&f.attrs) {
            syn::visit::visit_item_fn(self, f);
        }
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        // A macro's arguments are tokens to syn (`info!(x = %crate::sync::X, …)` is no
        // expression), so `crate :: <module>` is looked for in the tokens themselves: a
        // dependency hidden in a log line still counts.
        self.tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }
}

impl Uses {
    fn tokens(&mut self, stream: proc_macro2::TokenStream) {
        use proc_macro2::TokenTree;
        let trees: Vec<TokenTree> = stream.into_iter().collect();
        for (i, t) in trees.iter().enumerate() {
            match t {
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Ident(id) if id == "crate" => {
                    if let [
                        TokenTree::Punct(a),
                        TokenTree::Punct(b),
                        TokenTree::Ident(m),
                        ..,
                    ] = &trees[i + 1..]
                        && a.as_char() == ':'
                        && b.as_char() == ':'
                    {
                        self.0.insert(m.to_string());
                    }
                }
                _ => {}
            }
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether a file is itself a unit-test module (`#[cfg(test)] mod tests;` in its parent).
fn is_test_file(path: &Path) -> bool {
    path.file_stem().is_some_and(|s| s == "tests")
}

/// Module → the other top-level modules it uses, with one file that does, for the message.
fn dependencies() -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut deps: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let mut parts = rel.iter();
        let first = parts.next().unwrap().to_string_lossy().to_string();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" || is_test_file(&file) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let ast = syn::parse_file(&text)
            .unwrap_or_else(|e| panic!("{}: not parseable by syn: {e}", file.display()));
        let mut uses = Uses::default();
        uses.visit_file(&ast);
        let entry = deps.entry(module.clone()).or_default();
        for used in uses.0 {
            if used != module {
                entry.entry(used).or_insert_with(|| rel.to_path_buf());
            }
        }
    }
    deps
}

#[test]
fn every_module_of_src_has_a_layer() {
    let deps = dependencies();
    let unplaced: Vec<&String> = deps.keys().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        unplaced.is_empty(),
        "modules with no layer in tests/it/architecture.rs: {unplaced:?}"
    );
}

#[test]
fn dependencies_between_modules_run_only_downwards() {
    let mut wrong = Vec::new();
    for (module, used) in dependencies() {
        let Some(own) = layer_of(&module) else {
            continue;
        };
        for (dep, file) in used {
            match layer_of(&dep) {
                Some(l) if l < own => {}
                _ => wrong.push(format!(
                    "{module} uses {dep} (src/{}), which is not below it",
                    file.display()
                )),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "upward or sideways dependencies:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_check_sees_a_dependency_written_as_a_path_in_a_macro() {
    // The parser must not miss the forms the real code uses, or the layering test passes on
    // nothing: a `use`, a path in an expression, and one inside a logging macro.
    let ast: syn::File = syn::parse_str(
        r#"
        use crate::store::{Store, ts};
        fn f() { let _ = crate::platforms::kinds(); tracing::info!(x = %crate::sync::X, "y"); }
        #[cfg(test)]
        mod tests { use crate::cli::Cli; }
        "#,
    )
    .unwrap();
    let mut uses = Uses::default();
    uses.visit_file(&ast);
    assert_eq!(
        uses.0.into_iter().collect::<Vec<_>>(),
        ["platforms", "store", "sync"]
    );
}

/// The crates only `store` may name: the database drivers and their pool and TLS glue.
const DATABASE_CRATES: &[&str] = &[
    "rusqlite",
    "tokio_postgres",
    "deadpool_postgres",
    "tokio_postgres_rustls",
];

/// Every path or `use` whose first segment is one of [`DATABASE_CRATES`].
#[derive(Default)]
struct CrateUses(BTreeSet<String>);

impl<'ast> Visit<'ast> for CrateUses {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut tree = &u.tree;
        loop {
            match tree {
                syn::UseTree::Path(p) if p.ident == "crate" || p.ident == "self" => break,
                syn::UseTree::Path(p) => {
                    self.0.insert(p.ident.to_string());
                    break;
                }
                syn::UseTree::Name(n) => {
                    self.0.insert(n.ident.to_string());
                    break;
                }
                syn::UseTree::Rename(r) => {
                    self.0.insert(r.ident.to_string());
                    break;
                }
                syn::UseTree::Group(g) => match g.items.first() {
                    Some(t) => tree = t,
                    None => break,
                },
                syn::UseTree::Glob(_) => break,
            }
        }
        syn::visit::visit_item_use(self, u);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        if let Some(first) = p.segments.first() {
            self.0.insert(first.ident.to_string());
        }
        syn::visit::visit_path(self, p);
    }
}

#[test]
fn only_the_store_names_a_database_crate() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        if rel.starts_with("store") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let ast = syn::parse_file(&text).unwrap();
        let mut uses = CrateUses::default();
        uses.visit_file(&ast);
        for c in DATABASE_CRATES {
            if uses.0.contains(*c) {
                wrong.push(format!("{} names {c}", rel.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "database crates outside src/store (move the code behind a Store method): {wrong:?}"
    );
}
