//! Every problem serde finds in one pass, not only the first: a key serde
//! refuses (unknown, or of the wrong type) is reported, set aside (blanked in
//! a copy of the text, so every later position stays where it was) and the
//! text parsed again. An unknown key gets the nearest known one as a
//! suggestion.

use crate::{Config, Level, Problem, Source};
use std::ops::Range;

/// At most this many keys are set aside before giving up.
const MAX_PASSES: usize = 64;

/// The configuration, if what remains deserialises, and the problems found.
/// An unknown key with a near known one is read as that one from then on (as
/// a compiler carries on after a typo), so the rest is checked as meant; any
/// other refused key is set aside. A missing required key stops the pass (what
/// needs it cannot be checked).
/// The text returned is what was deserialised (renames made): positions in
/// the configuration point into it, line for line the same as the file's.
pub(crate) fn deserialize_all(
    text: &str,
    source: &Source,
) -> (Option<Config>, Vec<Problem>, String) {
    let mut work = text.to_owned();
    let mut problems = Vec::new();
    let mut set_aside: Vec<String> = Vec::new();
    // Renames made in `work`: (offset in `work` after which, bytes added).
    let mut edits: Vec<(usize, isize)> = Vec::new();
    let original = |at: usize, edits: &[(usize, isize)]| -> usize {
        let shift: isize = edits.iter().filter(|(p, _)| *p < at).map(|(_, d)| d).sum();
        at.saturating_add_signed(-shift)
    };
    for _ in 0..MAX_PASSES {
        let e = match toml::from_str::<Config>(&work) {
            Ok(c) => return (Some(c), problems, work),
            Err(e) => e,
        };
        let span = e.span().unwrap_or(0..0);
        let orig = original(span.start, &edits)..original(span.end, &edits);
        // Some syntax errors come without a message (a control character).
        let message = match e.message() {
            "" => "not valid TOML here (a control character, or broken syntax)",
            m => m,
        };
        if message.starts_with("missing field") {
            // Missing because it was set aside: its own problem is reported.
            if !set_aside
                .iter()
                .any(|k| message.contains(&format!("`{k}`")))
            {
                problems.push(source.problem(orig, Level::Error, message.to_owned()));
            }
            return (None, problems, work);
        }
        let (text, meant) = better(message);
        problems.push(source.problem(orig, Level::Error, text));
        match (meant, key_at(&work, span.start)) {
            (Some(meant), Some(key)) if key.start == span.start => {
                let delta = meant.len() as isize - key.len() as isize;
                work.replace_range(key.clone(), &meant);
                edits.push((key.start, delta));
            }
            _ => match pair_at(&work, span.start) {
                Some((range, key)) => {
                    blank(&mut work, range);
                    set_aside.push(key);
                }
                None => return (None, problems, work),
            },
        }
    }
    (None, problems, work)
}

/// serde's unknown-field message with the nearest expected key suggested,
/// and that key.
fn better(message: &str) -> (String, Option<String>) {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return (message.to_owned(), None);
    };
    let Some((given, expected)) = rest.split_once('`') else {
        return (message.to_owned(), None);
    };
    let known: Vec<&str> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|k| !k.is_empty())
        .collect();
    let nearest = known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(given, k), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min();
    match nearest {
        Some((_, k)) => (
            format!("unknown key `{given}` (did you mean `{k}`? checked as that)"),
            Some(k.to_owned()),
        ),
        None => (
            format!(
                "unknown key `{given}`; {}",
                expected.trim_start_matches(", ")
            ),
            None,
        ),
    }
}

/// The span of the bare key that starts at `at`, if one does (a table
/// header's name or a key of a key-value pair).
fn key_at(text: &str, at: usize) -> Option<Range<usize>> {
    let rest = text.get(at..)?;
    let rest = rest
        .strip_prefix("[[")
        .or_else(|| rest.strip_prefix('['))
        .unwrap_or(rest);
    let skip = text.len() - at - rest.len();
    let len = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
        .count();
    (len > 0).then(|| at + skip..at + skip + len)
}

/// The key-value pair (or table) that `at` falls in, innermost first: its
/// whole extent and its key.
fn pair_at(text: &str, at: usize) -> Option<(Range<usize>, String)> {
    let doc = toml_edit::ImDocument::parse(text.to_owned()).ok()?;
    let mut best: Option<(Range<usize>, String)> = None;
    visit_table(doc.as_table(), at, &mut best);
    best
}

fn consider(best: &mut Option<(Range<usize>, String)>, range: Range<usize>, key: &str, at: usize) {
    if range.start <= at && at < range.end.max(range.start + 1) {
        let narrower = best
            .as_ref()
            .is_none_or(|(b, _)| range.len() < b.len() || (range.len() == b.len()));
        if narrower {
            *best = Some((range, key.to_owned()));
        }
    }
}

fn visit_table(t: &toml_edit::Table, at: usize, best: &mut Option<(Range<usize>, String)>) {
    for (k, item) in t.iter() {
        let key_span = t.key(k).and_then(|k| k.span());
        match item {
            toml_edit::Item::Value(v) => {
                if let (Some(ks), Some(vs)) = (key_span, v.span()) {
                    consider(best, ks.start..vs.end, k, at);
                }
                visit_value(v, at, best);
            }
            toml_edit::Item::Table(inner) => {
                if let Some(r) = table_extent(inner) {
                    consider(best, r, k, at);
                }
                visit_table(inner, at, best);
            }
            toml_edit::Item::ArrayOfTables(arr) => {
                for inner in arr.iter() {
                    if let Some(r) = table_extent(inner) {
                        consider(best, r, k, at);
                    }
                    visit_table(inner, at, best);
                }
            }
            toml_edit::Item::None => {}
        }
    }
}

fn visit_value(v: &toml_edit::Value, at: usize, best: &mut Option<(Range<usize>, String)>) {
    if let toml_edit::Value::InlineTable(t) = v {
        for (k, inner) in t.iter() {
            if let (Some(ks), Some(vs)) = (t.key(k).and_then(|k| k.span()), inner.span()) {
                consider(best, ks.start..vs.end, k, at);
            }
            visit_value(inner, at, best);
        }
    }
    if let toml_edit::Value::Array(a) = v {
        for inner in a.iter() {
            visit_value(inner, at, best);
        }
    }
}

/// From a table's header to the end of its last entry.
fn table_extent(t: &toml_edit::Table) -> Option<Range<usize>> {
    let start = t.span()?.start;
    let mut end = t.span()?.end;
    for (k, item) in t.iter() {
        let e = match item {
            toml_edit::Item::Value(v) => v.span().map(|s| s.end),
            toml_edit::Item::Table(inner) => table_extent(inner).map(|r| r.end),
            toml_edit::Item::ArrayOfTables(arr) => arr
                .iter()
                .filter_map(|x| table_extent(x).map(|r| r.end))
                .max(),
            toml_edit::Item::None => None,
        };
        let _ = k;
        if let Some(e) = e {
            end = end.max(e);
        }
    }
    Some(start..end)
}

/// Spaces over `range` (line breaks kept, so lines and columns after it do
/// not move; every byte becomes ASCII, so the text stays UTF-8).
fn blank(text: &mut String, range: Range<usize>) {
    let mut bytes = std::mem::take(text).into_bytes();
    let end = range.end.min(bytes.len());
    for b in bytes.get_mut(range.start.min(end)..end).unwrap_or_default() {
        if *b != b'\n' {
            *b = b' ';
        }
    }
    *text = String::from_utf8(bytes).unwrap_or_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match Config::parse(text, "site.toml", std::path::Path::new(".")) {
            Ok(_) => vec![],
            Err(crate::ConfigError::Invalid(p)) => p
                .iter()
                .filter(|p| p.level == Level::Error)
                .map(|p| p.to_string())
                .collect(),
            Err(e) => vec![e.to_string()],
        }
    }

    #[test]
    fn every_unknown_or_mistyped_key_is_reported_in_one_pass() {
        let text = "[gateway]\ndata_dir = \"x\"\nmax_fram_bytes = 5\nidle_timeout_secs = \"ten\"\n\n[[device]]\nid = \"pump-1\"\nkind = \"infusion-pump\"\naddreses = [\"10.0.0.7\"]\n\n[gatway]\nx = 1\n";
        let p = problems(text);
        assert!(
            p.iter().any(
                |x| x.contains("site.toml:3:1") && x.contains("did you mean `max_frame_bytes`")
            ),
            "{p:#?}"
        );
        assert!(p.iter().any(|x| x.contains("site.toml:4:")), "{p:#?}");
        assert!(
            p.iter()
                .any(|x| x.contains("site.toml:9:1") && x.contains("did you mean `addresses`")),
            "{p:#?}"
        );
        assert!(
            p.iter()
                .any(|x| x.contains("site.toml:11:") && x.contains("did you mean `gateway`")),
            "{p:#?}"
        );
        // The typo is checked as meant: no cascade of "missing field".
        assert!(!p.iter().any(|x| x.contains("missing field")), "{p:#?}");
    }

    #[test]
    fn blanking_keeps_positions_and_utf8() {
        let mut t = "a = \"é\"\nb = [\n 1,\n 2]\nc = 3\n".to_owned();
        let (r, k) = pair_at(&t, t.find("b =").unwrap_or(0)).expect("b");
        assert_eq!(k, "b");
        blank(&mut t, r);
        assert_eq!(t.lines().count(), 5);
        assert!(t.ends_with("c = 3\n"));
        let (r, k) = pair_at(&t, 0).expect("a");
        assert_eq!(k, "a");
        blank(&mut t, r);
        assert!(t.is_char_boundary(t.len()));
    }

    #[test]
    fn message_types_in_the_wrong_case_and_positions_after_a_typo() {
        let text = "[gateway]\ndata_dir = \"x\"\n[[device]]\nid = \"ehr\"\nkind = \"ehr\"\naddreses = [\"10.0.0.2\"]\n[[route]]\nid = \"r\"\nprotocol = \"hl7-mllp\"\nlisten = \"127.0.0.1:2575\"\nupstream = \"10.0.0.3:2575\"\nsenders = [\"ehr\"]\nmessages = [\"oru^r01\", \"ADT^A01\"]\n";
        let p = problems(text);
        // The typo (line 6) is read as `addresses`; what follows keeps its
        // lines and columns.
        assert!(
            p.iter()
                .any(|x| x.starts_with("site.toml:13:13: error: \"oru^r01\"")
                    && x.contains("upper case")),
            "{p:#?}"
        );
        assert_eq!(p.len(), 2, "{p:#?}");
    }

    proptest::proptest! {
        /// A key no table knows, put anywhere, is reported on its own line,
        /// and the rest still loads as before (nothing else is reported).
        #[test]
        fn a_stray_key_is_reported_where_it_is(line in 0usize..40, name in "[a-z]{3,12}") {
            let base = include_str!("../../../examples/minimal.toml");
            proptest::prop_assume!(Config::parse(base, "site.toml", std::path::Path::new(".")).is_ok());
            let mut lines: Vec<&str> = base.lines().collect();
            // After a table header or key line, never inside a multi-line value.
            let at = line.min(lines.len());
            proptest::prop_assume!(at == 0 || lines[at - 1].trim_end().ends_with(']') || lines[at - 1].contains(" = "));
            proptest::prop_assume!(!lines[..at].iter().any(|l| l.trim_end().ends_with('[') ));
            let stray = format!("zz{name} = 1");
            lines.insert(at, &stray);
            let text = lines.join("\n");
            let p = problems(&text);
            let want = format!("site.toml:{}:", at + 1);
            proptest::prop_assert!(p.iter().any(|x| x.starts_with(&want) && x.contains(&format!("zz{name}"))), "{:#?}", p);
        }
    }

    #[test]
    fn a_syntax_error_is_one_problem_and_no_panic() {
        for text in [
            "[gateway\n",
            "a = = 1",
            "[[route]]\nid = \n",
            "\u{feff}x",
            "",
        ] {
            let _ = problems(text);
        }
    }
}
