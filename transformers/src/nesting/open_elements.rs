//! The HTML tree builder's stack of open elements, modelled for the depth
//! scan ([`super::check_html_depth`]).

/// The open elements of an HTML page as its tree builder would keep them,
/// near enough, and never fewer: an end tag closes everything opened
/// inside its element (a `</td>` closes the 500 `<font>`s a page left open
/// in the cell) unless the tree builder would ignore it; the elements whose
/// end tag may be omitted close when a sibling starts; and formatting
/// elements closed implicitly are opened again where content follows (the
/// standard's "active formatting elements", with its limit of three alike).
/// Where the model is unsure it keeps an element open: a page refused for
/// depth it does not have nests near the limit anyway, while one that
/// reaches the tree builder deeper than the limit is what costs time. For
/// XML only the depth counts.
#[derive(Default)]
pub(super) struct OpenElements {
    stack: Vec<OpenElement>,
    /// The active formatting elements: `None` is a marker (a cell,
    /// caption or object opened), `Some` an element and its attributes.
    formatting: Vec<Option<Formatting>>,
    /// The next element's id.
    next_id: u64,
    /// Where foreign content (`svg`, `math`) starts on the stack: inside
    /// it every tag nests and `/>` closes one, until an HTML tag breaks out.
    foreign: Option<usize>,
    /// Where an open `select` is: inside it html5ever closes nothing
    /// implicitly, and ends only options, groups and the select itself.
    select: Option<usize>,
    /// Open tables: outside one, table parts are ignored.
    tables: usize,

    pub(super) depth: usize,
}

struct OpenElement {
    name: Vec<u8>,
    id: u64,
    /// Put a marker on the formatting list (a cell, caption or object
    /// opened as HTML; inside svg or math a `<td>` is no cell).
    marker: bool,
}

struct Formatting {
    name: Vec<u8>,
    attributes: Vec<u8>,
    /// The element's id and where it is on the stack (while it is open).
    id: u64,
    at: usize,
}

/// The HTML standard's "special" elements: an end tag of any other element
/// is ignored when one of these is open inside it (`<span><div></span>`
/// leaves the `<div>` open), and they bound the search for an open `<li>`.
fn is_special(name: &[u8]) -> bool {
    matches!(
        name,
        b"address"
            | b"applet"
            | b"area"
            | b"article"
            | b"aside"
            | b"base"
            | b"basefont"
            | b"bgsound"
            | b"blockquote"
            | b"body"
            | b"br"
            | b"button"
            | b"caption"
            | b"center"
            | b"col"
            | b"colgroup"
            | b"dd"
            | b"details"
            | b"dir"
            | b"div"
            | b"dl"
            | b"dt"
            | b"embed"
            | b"fieldset"
            | b"figcaption"
            | b"figure"
            | b"footer"
            | b"form"
            | b"frame"
            | b"frameset"
            | b"h1"
            | b"h2"
            | b"h3"
            | b"h4"
            | b"h5"
            | b"h6"
            | b"head"
            | b"header"
            | b"hgroup"
            | b"hr"
            | b"html"
            | b"iframe"
            | b"img"
            | b"input"
            | b"keygen"
            | b"li"
            | b"link"
            | b"listing"
            | b"main"
            | b"marquee"
            | b"menu"
            | b"meta"
            | b"nav"
            | b"noembed"
            | b"noframes"
            | b"noscript"
            | b"object"
            | b"ol"
            | b"p"
            | b"param"
            | b"plaintext"
            | b"pre"
            | b"script"
            | b"search"
            | b"section"
            | b"select"
            | b"source"
            | b"style"
            | b"summary"
            | b"table"
            | b"tbody"
            | b"td"
            | b"template"
            | b"textarea"
            | b"tfoot"
            | b"th"
            | b"thead"
            | b"title"
            | b"tr"
            | b"track"
            | b"ul"
            | b"wbr"
            | b"xmp"
    )
}

/// Where an end tag stops looking for its element (the standard's "scope"
/// boundaries, and `select`, which html5ever counts among them).
fn is_scope(name: &[u8]) -> bool {
    matches!(
        name,
        b"applet"
            | b"caption"
            | b"html"
            | b"table"
            | b"td"
            | b"th"
            | b"marquee"
            | b"object"
            | b"template"
            | b"select"
    )
}

/// Start tags that close an open `<p>` first (`<table>` too, but not in
/// quirks mode, which a page without a doctype is in: it stays open here).
fn closes_p(name: &[u8]) -> bool {
    matches!(
        name,
        b"address"
            | b"article"
            | b"aside"
            | b"blockquote"
            | b"center"
            | b"details"
            | b"dialog"
            | b"dir"
            | b"div"
            | b"dl"
            | b"fieldset"
            | b"figcaption"
            | b"figure"
            | b"footer"
            | b"header"
            | b"hgroup"
            | b"main"
            | b"menu"
            | b"nav"
            | b"ol"
            | b"p"
            | b"search"
            | b"section"
            | b"summary"
            | b"ul"
            | b"h1"
            | b"h2"
            | b"h3"
            | b"h4"
            | b"h5"
            | b"h6"
            | b"pre"
            | b"listing"
            | b"form"
            | b"li"
            | b"dd"
            | b"dt"
            | b"plaintext"
            | b"hr"
            | b"xmp"
    )
}

/// Where a start tag's search for an open `<p>` stops: "button scope",
/// the default scope and `button`.
fn is_p_scope(name: &[u8]) -> bool {
    is_scope(name) || name == b"button"
}

/// Start tags that end foreign content (`svg`, `math`) before they open.
fn breaks_out(name: &[u8]) -> bool {
    matches!(
        name,
        b"b" | b"big"
            | b"blockquote"
            | b"body"
            | b"br"
            | b"center"
            | b"code"
            | b"dd"
            | b"div"
            | b"dl"
            | b"dt"
            | b"em"
            | b"embed"
            | b"h1"
            | b"h2"
            | b"h3"
            | b"h4"
            | b"h5"
            | b"h6"
            | b"head"
            | b"hr"
            | b"i"
            | b"img"
            | b"li"
            | b"listing"
            | b"menu"
            | b"meta"
            | b"nobr"
            | b"ol"
            | b"p"
            | b"pre"
            | b"ruby"
            | b"s"
            | b"small"
            | b"span"
            | b"strong"
            | b"strike"
            | b"sub"
            | b"sup"
            | b"table"
            | b"tt"
            | b"u"
            | b"ul"
            | b"var"
    )
}

/// Elements the tree builder opens again after an implied end.
fn is_formatting(name: &[u8]) -> bool {
    matches!(
        name,
        b"a" | b"b"
            | b"big"
            | b"code"
            | b"em"
            | b"font"
            | b"i"
            | b"nobr"
            | b"s"
            | b"small"
            | b"strike"
            | b"strong"
            | b"tt"
            | b"u"
    )
}

/// Elements that put a marker on the formatting list while they are open.
fn is_marker(name: &[u8]) -> bool {
    matches!(
        name,
        b"td" | b"th" | b"caption" | b"applet" | b"object" | b"marquee" | b"template"
    )
}

/// The elements a start tag closes, and where it stops looking for them.
enum Closes {
    /// The nearest open sibling among these, not past a boundary.
    Sibling(&'static [&'static [u8]], &'static [&'static [u8]]),
    /// The nearest open sibling among these, not past a special element
    /// other than `address`, `div` and `p` (`<li>`, `<dd>`, `<dt>`).
    ListItem(&'static [&'static [u8]]),
    /// The element itself, only when it is the current one (`<option>`).
    Current,
}

impl OpenElements {
    /// Opens `name` (with its raw `attributes`) and returns the depth;
    /// `self_closing` is a `/>` (which only foreign content honours).
    pub(super) fn open(&mut self, name: Vec<u8>, attributes: &[u8], self_closing: bool) -> usize {
        let n = name.as_slice();
        if let Some(root) = self.foreign {
            if !breaks_out(n) {
                if self_closing {
                    return self.stack.len();
                }
                self.push(name);
                return self.stack.len();
            }
            self.truncate(root);
        }
        if self.select.is_some() && n != b"select" {
            // An option or group ends an open option (html5ever's implied
            // end); everything else nests.
            if matches!(n, b"option" | b"optgroup")
                && let Some(k) = self.current_index(b"option")
            {
                self.truncate(k);
            }
            return self.insert(name, attributes);
        }
        if self.tables == 0
            && matches!(
                n,
                b"td" | b"th" | b"tr" | b"tbody" | b"thead" | b"tfoot" | b"caption" | b"colgroup"
            )
        {
            // Outside a table the tree builder drops a table part's tag.
            return self.text();
        }
        let closes = match n {
            b"td" | b"th" => Some(Closes::Sibling(&[b"td", b"th"], &[b"table", b"tr"])),
            b"tr" => Some(Closes::Sibling(
                &[b"tr"],
                &[b"table", b"thead", b"tbody", b"tfoot"],
            )),
            b"thead" | b"tbody" | b"tfoot" => Some(Closes::Sibling(
                &[b"thead", b"tbody", b"tfoot"],
                &[b"table"],
            )),
            b"li" => Some(Closes::ListItem(&[b"li"])),
            b"dt" | b"dd" => Some(Closes::ListItem(&[b"dt", b"dd"])),
            b"option" | b"optgroup" => Some(Closes::Current),
            _ => None,
        };
        if n == b"table"
            && self.stack.last().is_some_and(|e| {
                matches!(&*e.name, b"table" | b"tbody" | b"thead" | b"tfoot" | b"tr")
            })
            && let Some(k) = self.rfind(b"table", |_| false)
        {
            // A table started in a table's rows ends that table first.
            self.truncate(k);
        }
        if closes_p(n)
            && let Some(k) = self.rfind(b"p", is_p_scope)
        {
            self.truncate(k);
        }
        let found = match closes {
            None => None,
            // An option ends where the current element is one.
            Some(Closes::Current) => self.current_index(b"option"),
            Some(Closes::Sibling(siblings, boundaries)) => {
                self.rfind_any(siblings, |e| boundaries.contains(&e))
            }
            Some(Closes::ListItem(siblings)) => self.rfind_any(siblings, |e| {
                is_special(e) && !matches!(e, b"address" | b"div" | b"p")
            }),
        };
        if let Some(k) = found {
            self.truncate(k);
        }
        // A cell straight in a table or its body gets the row (and body)
        // it implies, a row its body.
        if matches!(n, b"td" | b"th" | b"tr") {
            let context = self
                .stack
                .iter()
                .rev()
                .map(|e| e.name.as_slice())
                .find(|e| matches!(*e, b"table" | b"tbody" | b"thead" | b"tfoot" | b"tr"));
            let implied: &[&[u8]] = match (n, context) {
                (b"tr", Some(b"table")) => &[b"tbody"],
                (b"td" | b"th", Some(b"table")) => &[b"tbody", b"tr"],
                (b"td" | b"th", Some(b"tbody" | b"thead" | b"tfoot")) => &[b"tr"],
                _ => &[],
            };
            for part in implied {
                self.push(part.to_vec());
            }
        }
        if matches!(n, b"a" | b"nobr") {
            // A second `<a>` closes the first (when nothing special is
            // open inside it; otherwise the tree keeps its depth).
            if let Some(f) = self.formatting_entry(n) {
                let open = self.open_index(f);
                self.formatting.remove(f);
                if let Some(k) = open
                    && !self.stack[k + 1..].iter().any(|e| is_special(&e.name))
                {
                    self.truncate(k);
                }
            }
        }
        if matches!(n, b"svg" | b"math") && self_closing {
            return self.stack.len();
        }
        self.insert(name, attributes)
    }

    /// Opens formatting closed implicitly, then `name`; keeps the lists
    /// its kind is on; returns the depth.
    fn insert(&mut self, name: Vec<u8>, attributes: &[u8]) -> usize {
        // Blocks and table parts open where they are; every other start
        // tag first opens again the formatting closed implicitly.
        if !closes_p(name.as_slice())
            && !matches!(
                name.as_slice(),
                b"table"
                    | b"caption"
                    | b"colgroup"
                    | b"tbody"
                    | b"thead"
                    | b"tfoot"
                    | b"tr"
                    | b"td"
                    | b"th"
            )
        {
            self.reconstruct();
        }
        let id = self.push(name);
        let n = self.stack.last().map_or(&b""[..], |e| &e.name);
        if is_formatting(n) {
            self.remember(n.to_vec(), attributes, id);
        } else if is_marker(n) {
            self.formatting.push(None);
            if let Some(e) = self.stack.last_mut() {
                e.marker = true;
            }
        } else if matches!(n, b"svg" | b"math") {
            self.foreign = Some(self.stack.len() - 1);
        } else if n == b"select" && self.select.is_none() {
            self.select = Some(self.stack.len() - 1);
        } else if n == b"table" {
            self.tables += 1;
        }
        self.stack.len()
    }

    /// A void element (`<br>`, `<img>`): it may end foreign content, and
    /// it is content; returns the depth.
    pub(super) fn void(&mut self, name: &[u8]) -> usize {
        if let Some(root) = self.foreign
            && breaks_out(name)
        {
            self.truncate(root);
        }
        self.text()
    }

    /// The current element's index when it is a `name` (how an `<option>`
    /// ends: only as the current element).
    fn current_index(&self, name: &[u8]) -> Option<usize> {
        let last = self.stack.len().checked_sub(1)?;
        (self.stack[last].name == name).then_some(last)
    }

    /// Content (text) where formatting elements were closed implicitly
    /// opens them again; returns the depth.
    pub(super) fn text(&mut self) -> usize {
        self.reconstruct();
        self.stack.len()
    }

    /// Closes the innermost open `name` and everything inside it, unless
    /// the tree builder ignores the end tag: nothing open to close, a
    /// special element open inside it (for any other element), or a scope
    /// boundary in the way (for a special one).
    pub(super) fn close(&mut self, name: &[u8]) {
        if let Some(at) = self.select {
            // An option or group ends only as the current element.
            let k = match name {
                b"select" => self.rfind(name, is_scope),
                b"option" | b"optgroup" => self.current_index(name),
                _ => None,
            };
            if let Some(k) = k.filter(|&k| k >= at) {
                self.truncate(k);
            }
            return;
        }
        if let Some(root) = self.foreign {
            // A foreign element closes by name, within the foreign content;
            // past it the end tag is an HTML one.
            if matches!(name, b"br" | b"p") {
                self.truncate(root);
            } else if let Some(k) = (root..self.stack.len())
                .rev()
                .find(|&k| self.stack[k].name == name)
            {
                self.truncate(k);
                return;
            }
        }
        if matches!(name, b"option" | b"optgroup") {
            // Only as the current element (the tree builder ignores the
            // tag otherwise, wherever the element is).
            if let Some(k) = self.current_index(name) {
                self.truncate(k);
            }
            return;
        }
        if is_formatting(name)
            && let Some(f) = self.formatting_entry(name)
        {
            let Some(k) = self.open_index(f) else {
                self.formatting.remove(f);
                return;
            };
            // With a special element inside it, the tree builder moves
            // that element's content under a new copy: the depth stays.
            if self.stack[k + 1..].iter().any(|e| is_special(&e.name)) {
                return;
            }
            self.formatting.remove(f);
            self.truncate(k);
            return;
        }
        let found = if is_special(name) {
            // `</li>` and `</p>` also stop at a list or a button.
            match name {
                // Table parts look only as far as a table ("table scope").
                b"table" | b"tbody" | b"thead" | b"tfoot" | b"tr" | b"td" | b"th" | b"caption" => {
                    self.rfind(name, |e| matches!(e, b"html" | b"table" | b"template"))
                }
                b"li" => self.rfind(name, |e| is_scope(e) || matches!(e, b"ol" | b"ul")),
                b"p" => self.rfind(name, |e| is_scope(e) || e == b"button"),
                _ => self.rfind(name, is_scope),
            }
        } else {
            self.rfind(name, is_special)
        };
        if let Some(k) = found {
            self.truncate(k);
        }
    }

    fn push(&mut self, name: Vec<u8>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.stack.push(OpenElement {
            name,
            id,
            marker: false,
        });
        id
    }

    /// Pops the element at `k` and everything above it.
    fn truncate(&mut self, k: usize) {
        if self.foreign.is_some_and(|root| root >= k) {
            self.foreign = None;
        }
        if self.select.is_some_and(|at| at >= k) {
            self.select = None;
        }
        for e in self.stack.drain(k..) {
            if e.marker {
                // Closing a cell forgets the formatting opened inside it.
                let marker = self.formatting.iter().rposition(Option::is_none);
                self.formatting.truncate(marker.unwrap_or(0));
            } else if &*e.name == b"table" {
                self.tables = self.tables.saturating_sub(1);
            }
        }
    }

    /// Adds a formatting element to the list, dropping the earliest of
    /// three alike since the last marker (the standard's Noah's Ark).
    fn remember(&mut self, name: Vec<u8>, attributes: &[u8], id: u64) {
        let attributes = attributes.trim_ascii().to_vec();
        let since = self
            .formatting
            .iter()
            .rposition(Option::is_none)
            .map_or(0, |m| m + 1);
        let alike: Vec<usize> = (since..self.formatting.len())
            .filter(|&i| {
                self.formatting[i]
                    .as_ref()
                    .is_some_and(|f| f.name == name && f.attributes == attributes)
            })
            .collect();
        if alike.len() >= 3 {
            self.formatting.remove(alike[0]);
        }
        self.formatting.push(Some(Formatting {
            name,
            attributes,
            id,
            at: self.stack.len() - 1,
        }));
    }

    /// Opens again, in order, the formatting elements after the last
    /// marker that are no longer open (each becomes a new element).
    fn reconstruct(&mut self) {
        let mut first = self.formatting.len();
        while first > 0 {
            match &self.formatting[first - 1] {
                Some(f) if !self.is_open(f) => first -= 1,
                _ => break,
            }
        }
        for i in first..self.formatting.len() {
            let name = self.formatting[i].as_ref().map(|f| f.name.clone());
            if let Some(name) = name {
                let id = self.push(name);
                let at = self.stack.len() - 1;
                if let Some(f) = self.formatting[i].as_mut() {
                    (f.id, f.at) = (id, at);
                }
            }
        }
    }

    /// The latest formatting entry named `name` after the last marker.
    fn formatting_entry(&self, name: &[u8]) -> Option<usize> {
        for i in (0..self.formatting.len()).rev() {
            match &self.formatting[i] {
                None => return None,
                Some(f) if f.name == name => return Some(i),
                Some(_) => {}
            }
        }
        None
    }

    /// Whether a formatting entry's element is still open.
    fn is_open(&self, f: &Formatting) -> bool {
        self.stack.get(f.at).is_some_and(|e| e.id == f.id)
    }

    /// Where formatting entry `f`'s element is on the stack, if open.
    fn open_index(&self, f: usize) -> Option<usize> {
        let e = self.formatting[f].as_ref()?;
        self.is_open(e).then_some(e.at)
    }

    /// The innermost open `name`, not looking past an element `stop` holds.
    fn rfind(&self, name: &[u8], stop: impl Fn(&[u8]) -> bool) -> Option<usize> {
        self.rfind_any(&[name], stop)
    }

    fn rfind_any(&self, names: &[&[u8]], stop: impl Fn(&[u8]) -> bool) -> Option<usize> {
        for k in (0..self.stack.len()).rev() {
            let e = self.stack[k].name.as_slice();
            if names.contains(&e) {
                return Some(k);
            }
            if stop(e) {
                return None;
            }
        }
        None
    }
}
