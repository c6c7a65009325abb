//! The layering of src/, enforced (issue 22: no import circle under src/; docs/layout.md).
//!
//! Each file under src/ is a module (an inline `mod x { .. }` is one too). A module imports
//! another when one of its `use` items, or a path in its code (macro arguments included),
//! names it: the path is resolved, through `crate::`, `super::`, `self::`, a child module or a
//! name a `use` binds (`pub use` re-exports followed), to the deepest module it reaches. Edges
//! between a module and its own ancestors or descendants are left out. Test code is left out
//! too: `#[cfg(test)]` items, and the modules they declare (`tests.rs`, `*_tests.rs`).
//!
//! The rules, for the library (src/lib.rs) and for the `dial` binary (src/cli/main.rs, a crate
//! over the library, checked on its own):
//! - no cycle among modules; and, once there is none, none among module trees either (each
//!   module taken with its submodules, compared with its siblings), so a child cannot hide a
//!   cycle its parent would close;
//! - the core names no host SDK: `proxy_wasm` only in src/wasm/, the Envoy dynamic-module ABI
//!   (`envoy_dynamic_module_*`) only in src/dynamic_module/, host ABI declarations (`extern`
//!   blocks, `no_mangle`, `export_name`, `link`) only in those two; the core imports neither;
//! - neither binding imports the other;
//! - every file under src/ is reached from a crate root or declared as test code.
//!
//! Files are parsed with `syn` (the parser Rust's proc-macros use), not by pattern matching.
//! tests/data/layering/ holds trees that break each rule: the checks are shown to fail on them,
//! with their exact report.

// A test crate throughout (as tests/docs.rs): a failing check stops at the line that failed.
#![allow(clippy::panic, clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Attribute, ImplItem, Item, Meta, Token, UseTree};

type ModPath = Vec<String>;

/// Module -> the modules it imports -> where it first names each.
type Graph = BTreeMap<ModPath, BTreeMap<ModPath, Site>>;

fn show(m: &[String]) -> String {
    if m.is_empty() {
        "crate root".to_string()
    } else {
        m.join("::")
    }
}

/// Where a module names something: the file, the line and its text.
#[derive(Debug, Clone)]
struct Site {
    file: String,
    line: usize,
    text: String,
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.text)
    }
}

/// A path a module names: from a `use` item (with the name it binds) or from code.
#[derive(Debug)]
struct Named {
    segments: Vec<String>,
    binds: Option<String>,
    from_use: bool,
    site: Site,
}

#[derive(Debug, Default)]
struct Module {
    named: Vec<Named>,
    /// Host SDK names and ABI declarations: (what, site).
    host: Vec<(HostItem, Site)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostItem {
    ProxyWasm,
    EnvoyAbi,
    AbiDeclaration,
}

/// One crate's modules, by path.
struct Crate {
    root: ModPath,
    root_file: String,
    modules: BTreeMap<ModPath, Module>,
}

/// The files a tree's crates reach, and those declared as test code.
#[derive(Default)]
struct Files {
    reached: BTreeSet<PathBuf>,
    test_files: BTreeSet<PathBuf>,
    test_dirs: BTreeSet<PathBuf>,
}

fn is_test_only(attrs: &[Attribute]) -> bool {
    fn requires_test(meta: &Meta) -> bool {
        match meta {
            Meta::Path(p) => p.is_ident("test"),
            Meta::List(l) if l.path.is_ident("all") => l
                .parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
                .is_ok_and(|all| all.iter().any(requires_test)),
            _ => false,
        }
    }
    attrs.iter().any(|a| {
        a.path().is_ident("cfg") && a.parse_args::<Meta>().is_ok_and(|m| requires_test(&m))
    })
}

fn item_attrs(item: &Item) -> &[Attribute] {
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::ExternCrate(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::ForeignMod(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::TraitAlias(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// Walks one module's items (not its submodules').
struct Collector<'a> {
    file: &'a str,
    lines: &'a [&'a str],
    module: Module,
    submodules: Vec<syn::ItemMod>,
}

impl Collector<'_> {
    fn site(&self, span: Span) -> Site {
        let line = span.start().line;
        Site {
            file: self.file.to_string(),
            line,
            text: self
                .lines
                .get(line.wrapping_sub(1))
                .map_or("", |l| l.trim())
                .to_string(),
        }
    }

    fn host_name(&mut self, name: &str, span: Span) {
        let what = if name == "proxy_wasm" {
            HostItem::ProxyWasm
        } else if name.starts_with("envoy_dynamic_module") {
            HostItem::EnvoyAbi
        } else {
            return;
        };
        let site = self.site(span);
        self.module.host.push((what, site));
    }

    fn path(&mut self, segments: Vec<String>, span: Span) {
        if segments.len() > 1 {
            let site = self.site(span);
            self.module.named.push(Named {
                segments,
                binds: None,
                from_use: false,
                site,
            });
        }
    }

    /// Paths in a macro's tokens (`a::b::c`, `$crate::x`), and the host names among them.
    fn tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let is_colon =
            |t: Option<&TokenTree>| matches!(t, Some(TokenTree::Punct(p)) if p.as_char() == ':');
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(g) => {
                    self.tokens(g.stream());
                    i += 1;
                }
                TokenTree::Ident(first) => {
                    // `::x` is a global path (another crate); `a::b` continued is handled below.
                    let global =
                        i >= 2 && is_colon(tokens.get(i - 1)) && is_colon(tokens.get(i - 2));
                    let mut segments = vec![first.to_string()];
                    self.host_name(&segments[0], first.span());
                    let mut j = i + 1;
                    while is_colon(tokens.get(j)) && is_colon(tokens.get(j + 1)) {
                        let Some(TokenTree::Ident(next)) = tokens.get(j + 2) else {
                            break;
                        };
                        self.host_name(&next.to_string(), next.span());
                        segments.push(next.to_string());
                        j += 3;
                    }
                    if !global {
                        self.path(segments, first.span());
                    }
                    i = j;
                }
                _ => i += 1,
            }
        }
    }

    fn use_tree(&mut self, tree: &UseTree, prefix: &mut Vec<String>) {
        let leaf = |c: &mut Self, name: &syn::Ident, binds: Option<String>| {
            let mut segments = prefix.clone();
            let name_text = name.to_string();
            c.host_name(&name_text, name.span());
            let binds = if name_text == "self" {
                binds.or_else(|| prefix.last().cloned())
            } else {
                segments.push(name_text.clone());
                binds.or(Some(name_text))
            };
            let site = c.site(name.span());
            c.module.named.push(Named {
                segments,
                binds: binds.filter(|b| b != "_"),
                from_use: true,
                site,
            });
        };
        match tree {
            UseTree::Path(p) => {
                self.host_name(&p.ident.to_string(), p.ident.span());
                prefix.push(p.ident.to_string());
                self.use_tree(&p.tree, prefix);
                prefix.pop();
            }
            UseTree::Name(n) => leaf(self, &n.ident, None),
            UseTree::Rename(r) => leaf(self, &r.ident, Some(r.rename.to_string())),
            UseTree::Glob(g) => {
                let mut segments = prefix.clone();
                segments.push("*".to_string());
                let site = self.site(g.star_token.spans[0]);
                self.module.named.push(Named {
                    segments,
                    binds: None,
                    from_use: true,
                    site,
                });
            }
            UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(t, prefix);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item(&mut self, i: &'ast Item) {
        match i {
            // A test module too: its file is test code, not a file no crate reaches.
            Item::Mod(m) => self.submodules.push(m.clone()),
            i if !is_test_only(item_attrs(i)) => visit::visit_item(self, i),
            _ => {}
        }
    }

    fn visit_impl_item(&mut self, i: &'ast ImplItem) {
        let attrs = match i {
            ImplItem::Const(i) => &i.attrs,
            ImplItem::Fn(i) => &i.attrs,
            ImplItem::Type(i) => &i.attrs,
            ImplItem::Macro(i) => &i.attrs,
            _ => return visit::visit_impl_item(self, i),
        };
        if !is_test_only(attrs) {
            visit::visit_impl_item(self, i);
        }
    }

    fn visit_item_use(&mut self, i: &'ast syn::ItemUse) {
        if i.leading_colon.is_some() {
            // `use ::other_crate::..`: only its host names matter.
            let mut c = Collector {
                file: self.file,
                lines: self.lines,
                module: Module::default(),
                submodules: Vec::new(),
            };
            c.use_tree(&i.tree, &mut Vec::new());
            self.module.host.extend(c.module.host);
            return;
        }
        self.use_tree(&i.tree, &mut Vec::new());
    }

    fn visit_item_foreign_mod(&mut self, i: &'ast syn::ItemForeignMod) {
        let site = self.site(i.abi.extern_token.span);
        self.module.host.push((HostItem::AbiDeclaration, site));
        visit::visit_item_foreign_mod(self, i);
    }

    fn visit_attribute(&mut self, a: &'ast Attribute) {
        let (path, tokens) = match &a.meta {
            Meta::Path(p) => (p, None),
            Meta::List(l) => (&l.path, Some(l.tokens.clone())),
            Meta::NameValue(nv) => (&nv.path, None),
        };
        let abi = |p: &syn::Path| {
            ["no_mangle", "export_name", "link"]
                .iter()
                .any(|n| p.is_ident(n))
        };
        let in_unsafe = path.is_ident("unsafe")
            && tokens.into_iter().flatten().any(|t| {
                matches!(&t, TokenTree::Ident(i) if ["no_mangle", "export_name"].contains(&i.to_string().as_str()))
            });
        if abi(path) || in_unsafe {
            let site = self.site(a.pound_token.spans[0]);
            self.module.host.push((HostItem::AbiDeclaration, site));
        }
        visit::visit_attribute(self, a);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        if p.leading_colon.is_none() {
            let segments = p.segments.iter().map(|s| s.ident.to_string()).collect();
            if let Some(first) = p.segments.first() {
                self.path(segments, first.ident.span());
            }
        }
        visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        visit::visit_macro(self, m);
        self.tokens(m.tokens.clone());
    }

    fn visit_ident(&mut self, i: &'ast proc_macro2::Ident) {
        self.host_name(&i.to_string(), i.span());
    }
}

/// Reads a crate from its root file, following `mod` declarations (`#[path]` included).
fn load_crate(
    tree: &Path,
    root_file: &str,
    root: ModPath,
    files: &mut Files,
) -> Result<Crate, String> {
    let mut krate = Crate {
        root: root.clone(),
        root_file: root_file.to_string(),
        modules: BTreeMap::new(),
    };
    let root_rel = PathBuf::from(root_file);
    let dir = root_rel.parent().map(Path::to_path_buf).unwrap_or_default();
    load_file(tree, &root_rel, root, &dir, &mut krate, files)?;
    Ok(krate)
}

fn load_file(
    tree: &Path,
    rel: &Path,
    path: ModPath,
    child_dir: &Path,
    krate: &mut Crate,
    files: &mut Files,
) -> Result<(), String> {
    let text = fs::read_to_string(tree.join(rel)).map_err(|e| format!("{}: {e}", rel.display()))?;
    let ast = syn::parse_file(&text).map_err(|e| {
        format!(
            "{}:{}: does not parse: {e}",
            rel.display(),
            e.span().start().line
        )
    })?;
    files.reached.insert(rel.to_path_buf());
    load_items(tree, rel, &text, &ast.items, path, child_dir, krate, files)
}

#[allow(clippy::too_many_arguments)]
fn load_items(
    tree: &Path,
    rel: &Path,
    text: &str,
    items: &[Item],
    path: ModPath,
    child_dir: &Path,
    krate: &mut Crate,
    files: &mut Files,
) -> Result<(), String> {
    let lines: Vec<&str> = text.lines().collect();
    let file = rel.display().to_string();
    let mut c = Collector {
        file: &file,
        lines: &lines,
        module: Module::default(),
        submodules: Vec::new(),
    };
    for item in items {
        c.visit_item(item);
    }
    let (module, submodules) = (c.module, c.submodules);
    krate.modules.insert(path.clone(), module);
    let file_dir = rel.parent().map(Path::to_path_buf).unwrap_or_default();
    for m in submodules {
        let name = m.ident.to_string();
        let mut sub = path.clone();
        sub.push(name.clone());
        let explicit = m.attrs.iter().find_map(|a| match &a.meta {
            Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        });
        if is_test_only(&m.attrs) {
            if m.content.is_none() {
                let declared = match &explicit {
                    Some(p) => file_dir.join(p),
                    None => child_dir.join(format!("{name}.rs")),
                };
                files.test_files.insert(declared);
                files
                    .test_files
                    .insert(child_dir.join(&name).join("mod.rs"));
                files.test_dirs.insert(child_dir.join(&name));
            }
            continue;
        }
        if let Some((_, items)) = &m.content {
            // Inline: its files, if it declares any, sit in a directory of its name.
            load_items(
                tree,
                rel,
                text,
                items,
                sub,
                &child_dir.join(&name),
                krate,
                files,
            )?;
            continue;
        }
        let candidates = match &explicit {
            Some(p) => vec![file_dir.join(p)],
            None => vec![
                child_dir.join(format!("{name}.rs")),
                child_dir.join(&name).join("mod.rs"),
            ],
        };
        let Some(found) = candidates.iter().find(|p| tree.join(p).is_file()).cloned() else {
            return Err(format!("{}: module {} has no file", file, show(&sub)));
        };
        let is_mod_rs = found.file_name().is_some_and(|f| f == "mod.rs");
        let grandchildren = if is_mod_rs || explicit.is_some() {
            found.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            child_dir.join(&name)
        };
        load_file(tree, &found, sub, &grandchildren, krate, files)?;
    }
    Ok(())
}

/// What a name a `use` binds resolves to: a module (followed further) or an item in one.
type Bindings = BTreeMap<(ModPath, String), (ModPath, bool)>;

impl Crate {
    fn is_module(&self, m: &[String]) -> bool {
        self.modules.contains_key(m)
    }

    /// The deepest module `segments` reaches from module `m`, and whether it names exactly that
    /// module; `None` for a path into another crate or to a local item.
    fn resolve(
        &self,
        bindings: &Bindings,
        m: &ModPath,
        segments: &[String],
    ) -> Option<(ModPath, bool)> {
        let first = segments.first()?;
        let (mut at, mut rest) = match first.as_str() {
            "crate" => (self.root.clone(), &segments[1..]),
            "self" => (m.clone(), &segments[1..]),
            "super" => {
                let mut at = m.clone();
                let mut rest = segments;
                while rest.first().is_some_and(|s| s == "super") {
                    if at.len() <= self.root.len() {
                        return None;
                    }
                    at.pop();
                    rest = &rest[1..];
                }
                (at, rest)
            }
            name => {
                let mut child = m.clone();
                child.push(name.to_string());
                if !self.is_module(&child) && !bindings.contains_key(&(m.clone(), name.to_string()))
                {
                    return None;
                }
                (m.clone(), segments)
            }
        };
        while let Some(segment) = rest.first() {
            if segment == "self" && rest.len() == 1 {
                break;
            }
            let mut next = at.clone();
            next.push(segment.clone());
            if self.is_module(&next) {
                at = next;
            } else if let Some((target, is_module)) = bindings.get(&(at.clone(), segment.clone())) {
                at = target.clone();
                if !is_module {
                    return Some((at, false));
                }
            } else {
                return Some((at, false));
            }
            rest = &rest[1..];
        }
        Some((at, true))
    }

    /// Every name the `use` items bind, resolved (re-exports of re-exports too).
    fn bindings(&self) -> Bindings {
        let mut bindings = Bindings::new();
        for _ in 0..32 {
            let mut next = Bindings::new();
            for (m, module) in &self.modules {
                for n in module.named.iter().filter(|n| n.from_use) {
                    if let (Some(name), Some(target)) =
                        (&n.binds, self.resolve(&bindings, m, &n.segments))
                    {
                        next.insert((m.clone(), name.clone()), target);
                    }
                }
            }
            if next == bindings {
                break;
            }
            bindings = next;
        }
        bindings
    }

    /// Module -> module it imports -> where first (a `use` line before a path in code).
    fn edges(&self) -> Graph {
        let bindings = self.bindings();
        let mut edges: Graph = BTreeMap::new();
        for (m, module) in &self.modules {
            let out = edges.entry(m.clone()).or_default();
            let uses = module.named.iter().filter(|n| n.from_use);
            let code = module.named.iter().filter(|n| !n.from_use);
            for n in uses.chain(code) {
                let Some((target, _)) = self.resolve(&bindings, m, &n.segments) else {
                    continue;
                };
                if !target.starts_with(m) && !m.starts_with(&target) {
                    out.entry(target).or_insert_with(|| n.site.clone());
                }
            }
        }
        edges
    }
}

/// Strongly connected components of more than one node, each sorted, in a stable order.
fn cycles(edges: &Graph) -> Vec<Vec<ModPath>> {
    let nodes: BTreeSet<&ModPath> = edges
        .iter()
        .flat_map(|(a, out)| std::iter::once(a).chain(out.keys()))
        .collect();
    let reach = |from: &ModPath| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(n) = todo.pop() {
            for next in edges.get(&n).into_iter().flat_map(|o| o.keys()) {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&ModPath, BTreeSet<ModPath>> =
        nodes.iter().map(|n| (*n, reach(n))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for n in &nodes {
        if done.contains(*n) || !reaches[n].contains(*n) {
            continue;
        }
        let scc: Vec<ModPath> = nodes
            .iter()
            .filter(|o| reaches[n].contains(**o) && reaches[*o].contains(*n))
            .map(|o| (*o).clone())
            .collect();
        done.extend(scc.iter().cloned());
        out.push(scc);
    }
    out
}

/// The shortest cycle through the first module of `scc`, as its edges.
fn shortest_cycle(edges: &Graph, scc: &[ModPath]) -> Vec<(ModPath, ModPath)> {
    let start = &scc[0];
    let mut parent: BTreeMap<ModPath, ModPath> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start.clone()]);
    while let Some(n) = queue.pop_front() {
        for next in edges.get(&n).into_iter().flat_map(|o| o.keys()) {
            if !scc.contains(next) {
                continue;
            }
            if next == start {
                let mut path = vec![(n.clone(), start.clone())];
                let mut at = n.clone();
                while &at != start {
                    let p = parent[&at].clone();
                    path.push((p.clone(), at));
                    at = p;
                }
                path.reverse();
                return path;
            }
            if !parent.contains_key(next) {
                parent.insert(next.clone(), n.clone());
                queue.push_back(next.clone());
            }
        }
    }
    Vec::new()
}

fn report_cycles(
    out: &mut Vec<String>,
    what: &str,
    edges: &Graph,
    sites: &BTreeMap<(ModPath, ModPath), (ModPath, Site)>,
) -> bool {
    let found = cycles(edges);
    for scc in &found {
        let names: Vec<String> = scc.iter().map(|m| show(m)).collect();
        let mut text = format!("{what} among {}:", names.join(", "));
        for (a, b) in shortest_cycle(edges, scc) {
            let (from, site) = &sites[&(a.clone(), b.clone())];
            let by = if from == &a {
                String::new()
            } else {
                format!(" (in {})", show(from))
            };
            text.push_str(&format!("\n  {} -> {}{by}: {site}", show(&a), show(&b)));
        }
        out.push(text);
    }
    !found.is_empty()
}

/// The room a module belongs to: `core`, `wasm`, `dynamic_module`, `cli`, or the crate root.
fn room(m: &[String]) -> &str {
    m.first().map_or("", String::as_str)
}

fn check_crate(krate: &Crate, out: &mut Vec<String>) -> Graph {
    let edges = krate.edges();
    let sites: BTreeMap<(ModPath, ModPath), (ModPath, Site)> = edges
        .iter()
        .flat_map(|(a, o)| {
            o.iter()
                .map(move |(b, s)| ((a.clone(), b.clone()), (a.clone(), s.clone())))
        })
        .collect();
    let label = format!("import cycle in the crate of {}", krate.root_file);
    if !report_cycles(out, &label, &edges, &sites) {
        // Module trees: an edge a::x -> b::y counts as a -> b between the siblings a and b.
        let mut tree_edges: Graph = BTreeMap::new();
        let mut tree_sites = BTreeMap::new();
        for (a, o) in &edges {
            for (b, site) in o {
                let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
                let (ta, tb) = (a[..=common].to_vec(), b[..=common].to_vec());
                if tree_edges
                    .entry(ta.clone())
                    .or_default()
                    .insert(tb.clone(), site.clone())
                    .is_none()
                {
                    tree_sites.insert((ta, tb), (a.clone(), site.clone()));
                }
            }
        }
        let label = format!(
            "import cycle between module trees in the crate of {}",
            krate.root_file
        );
        report_cycles(out, &label, &tree_edges, &tree_sites);
    }
    for (m, module) in &krate.modules {
        for (what, site) in &module.host {
            let (allowed, text) = match what {
                HostItem::ProxyWasm => (
                    room(m) == "wasm",
                    "names `proxy_wasm`, the proxy-wasm SDK (only src/wasm/ may)",
                ),
                HostItem::EnvoyAbi => (
                    room(m) == "dynamic_module",
                    "names an Envoy dynamic-module ABI item (only src/dynamic_module/ may)",
                ),
                HostItem::AbiDeclaration => (
                    ["wasm", "dynamic_module"].contains(&room(m)),
                    "declares a host ABI item (only the bindings may)",
                ),
            };
            if !allowed {
                out.push(format!("{} {text}: {site}", show(m)));
            }
        }
        for (target, site) in &edges[m] {
            let (from, to) = (room(m), room(target));
            let bindings = ["wasm", "dynamic_module"];
            if from == "core" && bindings.contains(&to) {
                out.push(format!(
                    "{} imports {}, a binding (the core imports none): {site}",
                    show(m),
                    show(target)
                ));
            } else if bindings.contains(&from) && bindings.contains(&to) && from != to {
                out.push(format!(
                    "{} imports {}, the other binding: {site}",
                    show(m),
                    show(target)
                ));
            }
        }
    }
    edges
}

fn rs_files(tree: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
    let Ok(entries) = fs::read_dir(tree.join(dir)) else {
        return;
    };
    for e in entries.flatten() {
        let rel = dir.join(e.file_name());
        if e.path().is_dir() {
            rs_files(tree, &rel, out);
        } else if rel.extension().is_some_and(|x| x == "rs") {
            out.insert(rel);
        }
    }
}

/// Every rule broken in the tree at `tree` (a directory holding `src/`), one line (or block)
/// each; empty when the layering holds. Also the lib's and the binary's import edges.
fn check(tree: &Path) -> (Vec<String>, Vec<Graph>) {
    let mut out = Vec::new();
    let mut files = Files::default();
    let mut graphs = Vec::new();
    let mut crates = vec![("src/lib.rs", vec![])];
    if tree.join("src/cli/main.rs").is_file() {
        crates.push(("src/cli/main.rs", vec!["cli".to_string()]));
    }
    for (root_file, root) in crates {
        match load_crate(tree, root_file, root, &mut files) {
            Ok(krate) => graphs.push(check_crate(&krate, &mut out)),
            Err(e) => out.push(e),
        }
    }
    let mut all = BTreeSet::new();
    rs_files(tree, Path::new("src"), &mut all);
    for f in all {
        let test =
            files.test_files.contains(&f) || files.test_dirs.iter().any(|d| f.starts_with(d));
        if !files.reached.contains(&f) && !test {
            out.push(format!(
                "{} is reached from no crate root (src/lib.rs, src/cli/main.rs) and declared as no test module",
                f.display()
            ));
        }
    }
    (out, graphs)
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn edge(graph: &Graph, a: &str, b: &str) -> Option<Site> {
    let p = |s: &str| s.split("::").map(String::from).collect::<ModPath>();
    graph.get(&p(a))?.get(&p(b)).cloned()
}

#[test]
fn src_is_layered() {
    let (problems, graphs) = check(&repo());
    assert!(
        problems.is_empty(),
        "src/ breaks its layering:\n{}",
        problems.join("\n")
    );
    // The scan sees what is there: the layering's edges, one through a `pub use` re-export
    // (`policy::Guard` is `policy::guard::Guard`), one only in a path in code.
    let [lib, cli] = &graphs[..] else {
        panic!(
            "expected the library and the binary, got {} crates",
            graphs.len()
        );
    };
    assert!(
        lib.len() > 50 && cli.len() > 10,
        "{} and {} modules",
        lib.len(),
        cli.len()
    );
    for (a, b) in [
        ("core::fleet", "core::policy::guard"),
        ("core::guard", "core::policy::guard"),
        ("core::catalog", "core::fleet"),
        ("core::catalog", "core::stats"),
        ("core::fleet", "core::stats"),
        ("wasm", "core::runtime"),
        ("dynamic_module", "core::fleet"),
        ("cli::find", "cli::placement"),
        ("cli::modes", "cli::find"),
        ("cli::common", "cli::find"),
    ] {
        let graph = if a.starts_with("cli") { cli } else { lib };
        assert!(edge(graph, a, b).is_some(), "no edge {a} -> {b}");
    }
    let in_code = edge(lib, "core::runtime", "core::bucket").map(|s| s.text);
    assert_eq!(
        in_code.as_deref(),
        Some(
            "let mut fingerprint = crate::core::bucket::position(b\"dial-policy\", configuration)"
        )
    );
    // And the edges the layering removed are gone.
    for (a, b) in [
        ("core::policy", "core::guard"),
        ("core::policy", "core::fleet"),
        ("core::stats", "core::fleet"),
        ("core::guard", "core::fleet"),
        ("cli::allow", "cli::modes"),
        ("cli::find", "cli::modes"),
        ("cli::find", "cli::common"),
    ] {
        let graph = if a.starts_with("cli") { cli } else { lib };
        assert_eq!(edge(graph, a, b).map(|s| s.to_string()), None, "{a} -> {b}");
    }
}

fn fixture(name: &str) -> Vec<String> {
    let tree = repo().join("tests/data/layering").join(name);
    assert!(
        tree.join("src/lib.rs").is_file(),
        "missing fixture {}",
        tree.display()
    );
    check(&tree).0
}

/// A planted cycle through a grouped `use`, a `pub use` re-export, `super::` and a path in a
/// macro's arguments; a second one among the binary's files; a third only between module trees.
/// Test code (`#[cfg(test)]`, `tests.rs`) and a path in a string close no cycle.
#[test]
fn a_planted_cycle_is_reported_with_its_use_lines() {
    assert_eq!(
        fixture("cycle"),
        [
            "import cycle in the crate of src/lib.rs among core::a, core::b, core::c:
  core::a -> core::b: src/core/a.rs:3: use crate::core::{b::Thing, stats};
  core::b -> core::c: src/core/b.rs:7: log::warn!(\"{}\", crate::core::c::LIMIT);
  core::c -> core::a: src/core/c.rs:3: use super::facade::Item;",
            "import cycle in the crate of src/cli/main.rs among cli::one, cli::two:
  cli::one -> cli::two: src/cli/one.rs:1: use crate::two::helper;
  cli::two -> cli::one: src/cli/two.rs:3: super::one::run();",
        ]
    );
    assert_eq!(
        fixture("trees"),
        ["import cycle between module trees in the crate of src/lib.rs among core::policy, core::runtime:
  core::policy -> core::runtime (in core::policy::check): src/core/policy/check.rs:1: use crate::core::runtime::Verdict;
  core::runtime -> core::policy: src/core/runtime.rs:1: use crate::core::policy::Policy;"]
    );
}

/// The core naming each host SDK (in a `use`, a path in code, a macro, an `extern` block), the
/// core importing a binding, the bindings importing each other, a file no crate reaches.
#[test]
fn a_planted_host_import_is_reported_exactly() {
    assert_eq!(
        fixture("sdk"),
        [
            "core::sticky names `proxy_wasm`, the proxy-wasm SDK (only src/wasm/ may): src/core/sticky.rs:1: use proxy_wasm::types::Status;",
            "core::sticky declares a host ABI item (only the bindings may): src/core/sticky.rs:3: extern \"C\" {",
            "core::sticky names an Envoy dynamic-module ABI item (only src/dynamic_module/ may): src/core/sticky.rs:4: fn envoy_dynamic_module_callback_log(level: u32, message: &str);",
            "core::sticky names `proxy_wasm`, the proxy-wasm SDK (only src/wasm/ may): src/core/sticky.rs:8: log::info!(\"{:?}\", ::proxy_wasm::hostcalls::log(message))",
            "core::time imports wasm::host, a binding (the core imports none): src/core/time.rs:2: let now = crate::wasm::host::now();",
            "dynamic_module imports wasm, the other binding: src/dynamic_module/mod.rs:1: use crate::{core::time, wasm::Root};",
            "src/core/stray.rs is reached from no crate root (src/lib.rs, src/cli/main.rs) and declared as no test module",
        ]
    );
}
