use super::*;

const R: Rejector = Rejector {
    family: "test",
    feed_id: "f",
};

fn nested(open: &str, close: &str, n: usize) -> Vec<u8> {
    let mut s = String::new();
    for _ in 0..n {
        s.push_str(open);
    }
    for _ in 0..n {
        s.push_str(close);
    }
    s.into_bytes()
}

#[test]
fn deep_xml_is_refused_and_shallow_xml_with_tricky_text_is_not() {
    let err = check_xml_depth(&nested("<a>", "</a>", 30_000), &R).unwrap_err();
    assert_eq!(err.class, crate::ErrorClass::LimitExceeded);
    assert_eq!(err.location, Location::Byte(MAX_XML_DEPTH as u64 * 3));
    assert!(check_xml_depth(&nested("<a>", "</a>", MAX_XML_DEPTH), &R).is_ok());
    // Self-closing elements, comments, CDATA, processing instructions
    // and `>` inside attribute values do not deepen anything.
    let mut flat = b"<?xml version=\"1.0\"?><r x='a>b' y=\"/>\">".to_vec();
    for _ in 0..10_000 {
        flat.extend_from_slice(b"<a/><!-- <b> --><![CDATA[<c>]]><d k=\"<e>\"/>");
    }
    flat.extend_from_slice(b"</r>");
    assert!(check_xml_depth(&flat, &R).is_ok());
}

#[test]
fn end_tags_inside_a_processing_instruction_or_after_an_empty_comment_hide_no_depth() {
    // Inside `<? … ?>` a `</a>` is text to roxmltree, so it closes nothing.
    let pi = nested("<a><?p ></a>?>", "</a>", 30_000);
    assert!(check_xml_depth(&pi, &R).is_err());
    let ok = b"<?xml version=\"1.0\"?><r><?p a > b ?><a/></r>";
    assert!(check_xml_depth(ok, &R).is_ok());
    // `<!-->` and `<!--->` are whole comments to html5ever: what follows
    // them is markup, not more comment.
    for empty in ["<!-->", "<!--->"] {
        let mut page = empty.as_bytes().to_vec();
        page.extend(nested("<div>", "", 100_000));
        assert!(check_html_depth(&page, &R).is_err(), "{empty}");
    }
}

/// The least depth limit `check_html_depth` lets `page` through at.
fn scanned_depth(page: &[u8]) -> usize {
    let (mut lo, mut hi) = (0, page.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if check(page, Dialect::Html, mid, &R).is_ok() {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// The depth of the tree html5ever builds (`html` and `body` included).
fn built_depth(page: &[u8]) -> usize {
    let doc = scraper::Html::parse_document(&String::from_utf8_lossy(page));
    doc.tree
        .nodes()
        .filter(|n| n.value().is_element())
        .map(|n| n.ancestors().filter(|a| a.value().is_element()).count() + 1)
        .max()
        .unwrap_or(0)
}

#[test]
fn the_scan_never_sees_a_shallower_page_than_the_tree_builder_builds() {
    // Misnesting an attacker would try: each kept from hiding depth.
    const TOKENS: &[&str] = &[
        "<div>",
        "</div>",
        "<span>",
        "</span>",
        "<b>",
        "</b>",
        "<a>",
        "</a>",
        "<p>",
        "</p>",
        "<li>",
        "</li>",
        "<ul>",
        "</ul>",
        "<table>",
        "</table>",
        "<tr>",
        "</tr>",
        "<td>",
        "</td>",
        "<option>",
        "<select>",
        "</select>",
        "<dd>",
        "<dl>",
        "<font>",
        "</font>",
        "x",
        "<br>",
        "<div \">",
        "<span a=\"\">",
        "<i>",
        "</i>",
        "<h1>",
        "</h1>",
        "<form>",
        "<button>",
        "</button>",
        "<nobr>",
        "<caption>",
        "<tbody>",
        "<th>",
        "<em>",
        "<svg>",
        "<path/>",
        "<div/>",
        "</svg>",
        "<colgroup>",
        "<b class=x>",
        "<a href=\"/\">",
        "<optgroup>",
        "</option>",
        "<center>",
        "<object>",
        "</object>",
        "<li/>",
        "</br>",
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..300 {
        // A few tokens, repeated: the shapes that nest.
        let motif: Vec<&str> = (0..1 + next() % 6)
            .map(|_| TOKENS[(next() % TOKENS.len() as u64) as usize])
            .collect();
        let mut page = String::new();
        for _ in 0..150 {
            for t in &motif {
                page.push_str(t);
            }
            if next() % 4 == 0 {
                page.push_str(TOKENS[(next() % TOKENS.len() as u64) as usize]);
            }
        }
        let (scanned, built) = (scanned_depth(page.as_bytes()), built_depth(page.as_bytes()));
        // The scan counts the elements that stay open on the tree
        // builder's stack (what its work grows with); the tree adds
        // html, body and a void leaf, and foster-parenting (content
        // misplaced in a table goes before it) and table parts inside
        // a select build deeper than the stack holds. The bound: the
        // built depth stays within three times the scanned one.
        assert!(
            3 * scanned + 3 >= built,
            "round {round}: motif {motif:?}: scanned {scanned}, built {built}"
        );
    }
}

#[test]
fn deep_html_is_refused_and_unclosed_cells_and_void_tags_are_not() {
    assert!(check_html_depth(&nested("<div>", "</div>", 100_000), &R).is_err());
    assert!(check_html_depth(&nested("<table><tr><td>", "", 20_000), &R).is_err());
    assert!(check_html_depth(&nested("<b id=x>", "", 1_000), &R).is_err());
    // Tags that only look closed or empty to a naive scan: a stray
    // quote is part of a name, `/>` closes nothing in HTML, an end tag
    // does not close past a block it holds, an item does not end an
    // item outside its table, and reopened formatting nests.
    for hidden in [
        nested("<div \">", "", 100_000),
        nested("<div/>", "", 100_000),
        nested("<span><div></span>", "", 100_000),
        nested("<li><table><td><li>", "", 20_000),
        // Each paragraph reopens every earlier bold (all unalike).
        (0..2_000)
            .map(|i| format!("<p><b class={i}>x"))
            .collect::<String>()
            .into_bytes(),
        nested("<svg><br><object>", "", 20_000),
        nested("<select><font></select>", "", 20_000),
        // Cells inside svg are no cells: closing them must not forget the
        // formatting reopened in every paragraph.
        (0..20_000)
            .map(|i| format!("<p><b class={i}>x<svg><td></svg>"))
            .collect::<String>()
            .into_bytes(),
    ] {
        let e = check_html_depth(&hidden, &R).expect_err(&String::from_utf8_lossy(&hidden[..40]));
        assert_eq!(e.class, crate::ErrorClass::LimitExceeded);
    }
    // And what a browser does not nest is not refused: a thousand
    // unclosed links are siblings, as are list items and options.
    for flat in [
        nested("<a href=x>link", "", 1_000),
        nested("<li>item", "", 10_000),
        nested("<option>o", "", 10_000),
        [
            b"<select name=precinct>".to_vec(),
            nested("<option>Precinct", "", 600),
            b"</select>".to_vec(),
        ]
        .concat(),
        nested("<p>para<b>bold", "", 10_000),
        nested("<svg><path d='M0'/><circle/></svg>", "", 10_000),
    ] {
        assert!(
            check_html_depth(&flat, &R).is_ok(),
            "{}",
            String::from_utf8_lossy(&flat[..40])
        );
    }
    // A long results table whose cells and rows are never closed, with
    // line breaks and images, and a script holding tags.
    let mut page =
        b"<html><head><script>if (a<b) { x = '<div><div>'; }</script></head><body><table>".to_vec();
    for _ in 0..20_000 {
        page.extend_from_slice(b"<tr><td>Jon Ossoff<br><img src=x><td>1,089<p>note");
    }
    page.extend_from_slice(b"</table></body></html>");
    assert!(check_html_depth(&page, &R).is_ok());
}

#[test]
fn a_page_of_more_elements_than_any_results_page_is_refused_at_the_first_one_past() {
    let at_the_cap = "<br>".repeat(MAX_HTML_ELEMENTS);
    assert!(check_html_depth(at_the_cap.as_bytes(), &R).is_ok());
    let past = format!("{at_the_cap}<p>");
    let e = check_html_depth(past.as_bytes(), &R).unwrap_err();
    assert_eq!(e.class, crate::error::ErrorClass::LimitExceeded, "{e}");
    assert_eq!(
        e.location,
        Location::Byte(4 * MAX_HTML_ELEMENTS as u64),
        "{e}"
    );
}
