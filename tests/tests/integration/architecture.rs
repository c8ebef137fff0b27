//! The house's layout rules, checked on its own sources: no module of any
//! crate in the workspace depends, directly or round a loop, on a module
//! that depends back on it (GUIDE.md §5: no import cycles).
//!
//! The check parses every source file with `syn` and follows every path
//! it names from `crate::`, `super::` or `self::` (`use` trees, types,
//! expressions; a sibling can be named no other way), so a cycle through a fully
//! qualified path in a function body counts as one through a `use`. An
//! edge joins the two sibling modules under which the paths diverge: a
//! parent naming its child is not an edge (a trait's module declares its
//! backends), two children naming each other are.
//!
//! Not seen: paths inside macro invocations and attribute strings
//! (`#[serde(with = "crate::x")]`); a path through a parent's re-export
//! (`crate::PayloadContext` stops at the crate root, so two siblings that
//! reach each other only through re-exports pass); names brought in by a
//! glob or an alias (`use super::*`, `use crate::fleet as f`); inline
//! modules as nodes of their own. Imports in `#[cfg(test)]` modules count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// A module's path from its crate root (`["fleet", "report"]`).
type ModulePath = Vec<String>;

/// One crate's module tree: every file module, and the paths each names.
struct CrateModules {
    root: PathBuf,
    /// File module → the module paths it names, with the file for the report.
    named: BTreeMap<ModulePath, BTreeSet<ModulePath>>,
}

/// The workspace root (this crate is `tests/`).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Every crate root directory: a directory holding `lib.rs` or `main.rs`,
/// outside build output and installed tools.
fn crate_roots(dir: &Path, out: &mut Vec<PathBuf>) {
    let skip = ["target", ".votewire", "node_modules", ".git", "fuzz"];
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    if entries
        .iter()
        .any(|p| p.ends_with("lib.rs") || p.ends_with("main.rs"))
    {
        out.push(dir.to_path_buf());
    }
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() && !skip.contains(&name) {
            crate_roots(&p, out);
        }
    }
}

/// The module a file is, from its path under the crate root.
fn module_of(root: &Path, file: &Path) -> ModulePath {
    let rel = file.strip_prefix(root).expect("a file under its root");
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    if parts == ["lib"] || parts == ["main"] {
        parts.clear();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let p = e.expect("a directory entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Collects the absolute module paths one file names.
struct PathCollector<'a> {
    file_module: &'a ModulePath,
    /// Inline modules (`mod tests { … }`) entered so far.
    inline: Vec<String>,
    named: BTreeSet<ModulePath>,
}

impl PathCollector<'_> {
    fn current(&self) -> ModulePath {
        let mut m = self.file_module.clone();
        m.extend(self.inline.iter().cloned());
        m
    }

    /// Resolves `segments` as written in the current module; `None` for a
    /// path that does not start at `crate`, `super` or `self`. Such a path
    /// names a local item, an extern crate or a child module of the current
    /// one (a sibling needs `super::` or `crate::`), and a child is never
    /// an edge.
    fn resolve(&self, segments: &[String]) -> Option<ModulePath> {
        let mut base = self.current();
        let mut rest = segments;
        match rest.first().map(String::as_str) {
            Some("crate") => {
                base.clear();
                rest = &rest[1..];
            }
            Some("self") => rest = &rest[1..],
            Some("super") => {
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
            }
            _ => return None,
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    fn note(&mut self, segments: Vec<String>) {
        if let Some(p) = self.resolve(&segments) {
            self.named.insert(p);
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut s = prefix.clone();
                if n.ident != "self" {
                    s.push(n.ident.to_string());
                }
                self.note(s);
            }
            syn::UseTree::Rename(r) => {
                let mut s = prefix.clone();
                s.push(r.ident.to_string());
                self.note(s);
            }
            syn::UseTree::Glob(_) => self.note(prefix.clone()),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for PathCollector<'_> {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1 {
            self.note(segments);
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if m.content.is_some() {
            self.inline.push(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
            self.inline.pop();
        }
    }
}

fn read_crate(root: &Path) -> CrateModules {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    files.sort();
    let mut named = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let ast =
            syn::parse_file(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", file.display()));
        let module = module_of(root, &file);
        let mut collector = PathCollector {
            file_module: &module,
            inline: Vec::new(),
            named: BTreeSet::new(),
        };
        collector.visit_file(&ast);
        named.insert(module.clone(), collector.named);
    }
    CrateModules {
        root: root.to_path_buf(),
        named,
    }
}

/// The edges between sibling file modules: `a → b` when a file under `a`
/// names a path under `b`, `a` and `b` children of one parent.
fn sibling_edges(c: &CrateModules) -> BTreeMap<ModulePath, BTreeSet<ModulePath>> {
    let is_module = |p: &[String]| c.named.contains_key(p);
    let mut edges: BTreeMap<ModulePath, BTreeSet<ModulePath>> = BTreeMap::new();
    for (from, paths) in &c.named {
        for target in paths {
            let common = from.iter().zip(target).take_while(|(a, b)| a == b).count();
            if common < from.len() && common < target.len() && is_module(&target[..=common]) {
                edges
                    .entry(from[..=common].to_vec())
                    .or_default()
                    .insert(target[..=common].to_vec());
            }
        }
    }
    edges
}

/// Every set of modules that reach each other (Tarjan's strongly
/// connected components), the single-module ones left out.
fn cycles(edges: &BTreeMap<ModulePath, BTreeSet<ModulePath>>) -> Vec<Vec<ModulePath>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<ModulePath, BTreeSet<ModulePath>>,
        index: BTreeMap<&'a ModulePath, usize>,
        low: BTreeMap<&'a ModulePath, usize>,
        stack: Vec<&'a ModulePath>,
        found: Vec<Vec<ModulePath>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a ModulePath) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            for w in self.edges.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.stack.contains(&w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    component.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !walk.index.contains_key(v) {
            walk.visit(v);
        }
    }
    walk.found
}

fn report(c: &CrateModules, found: &[Vec<ModulePath>]) -> String {
    let edges = sibling_edges(c);
    let name = |m: &ModulePath| format!("crate::{}", m.join("::"));
    let mut out = String::new();
    for component in found {
        out.push_str(&format!("{}: a cycle among", c.root.display()));
        for m in component {
            out.push_str(&format!(" {}", name(m)));
        }
        out.push('\n');
        for a in component {
            for b in edges
                .get(a)
                .into_iter()
                .flatten()
                .filter(|b| component.contains(b))
            {
                out.push_str(&format!("  {} names {}\n", name(a), name(b)));
            }
        }
    }
    out
}

#[test]
fn no_module_of_any_crate_is_in_an_import_cycle() {
    let mut roots = Vec::new();
    crate_roots(&workspace(), &mut roots);
    // The workspace's crates and test binaries, found on disk (a new crate
    // is checked without being listed here).
    for expected in [
        "aggregator/src",
        "ingestors/src",
        "transformers/src",
        "votewire/src",
    ] {
        assert!(
            roots.contains(&workspace().join(expected)),
            "{expected} is a crate root: {roots:?}"
        );
    }
    let mut problems = String::new();
    let mut modules = 0;
    for root in &roots {
        let c = read_crate(root);
        modules += c.named.len();
        problems.push_str(&report(&c, &cycles(&sibling_edges(&c))));
    }
    assert!(modules > 100, "only {modules} modules were read");
    assert!(problems.is_empty(), "import cycles:\n{problems}");
}

/// The check itself finds a cycle through a `use`, one through a path in a
/// function body, and one round three modules; and it takes neither a
/// parent naming its child nor an inline test module's `super::` for one.
#[test]
fn the_cycle_check_finds_the_cycles_a_crate_has_and_no_others() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let src = dir.path();
    let files = [
        (
            "lib.rs",
            "mod a; mod b; mod c; mod d; mod fleet; pub use a::A;",
        ),
        ("a.rs", "pub struct A; use crate::b::B;"),
        (
            "b.rs",
            "pub struct B; fn f() -> usize { std::mem::size_of::<crate::a::A>() }",
        ),
        ("c.rs", "use super::d::D; pub struct C;"),
        (
            "d.rs",
            "pub struct D; #[cfg(test)] mod tests { use super::D; }",
        ),
        (
            "fleet/mod.rs",
            "mod x; mod y; mod z; use x::X; use self::y::Y;",
        ),
        ("fleet/x.rs", "pub struct X; use super::y::Y;"),
        ("fleet/y.rs", "pub struct Y; use crate::fleet::z::Z;"),
        ("fleet/z.rs", "pub struct Z; fn g(_: super::x::X) {}"),
    ];
    std::fs::create_dir(src.join("fleet")).expect("fleet/");
    for (name, text) in files {
        std::fs::write(src.join(name), text).expect("a source file");
    }
    let c = read_crate(src);
    let found = cycles(&sibling_edges(&c));
    let m = |s: &str| -> ModulePath { s.split("::").map(String::from).collect() };
    assert_eq!(
        found.len(),
        2,
        "a ↔ b and fleet::x → y → z → x; found {found:?}"
    );
    assert!(found.contains(&vec![m("a"), m("b")]), "{found:?}");
    assert!(
        found.contains(&vec![m("fleet::x"), m("fleet::y"), m("fleet::z")]),
        "{found:?}"
    );
    let text = report(&c, &found);
    assert!(text.contains("crate::a names crate::b"), "{text}");
    assert!(
        text.contains("crate::fleet::z names crate::fleet::x"),
        "{text}"
    );
}
