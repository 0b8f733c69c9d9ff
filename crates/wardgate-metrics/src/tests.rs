use super::*;
use proptest::prelude::*;

/// A reader of the text format as Prometheus's parser reads it, for the tests:
/// every sample with its family, labels (unescaped) and value.
#[derive(Debug, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: String,
}

fn read(text: &str) -> Result<Vec<Sample>, String> {
    let mut family: Option<(String, String)> = None;
    let mut helped: Option<String> = None;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').ok_or("HELP without text")?;
            if !seen.insert(name.to_owned()) {
                return Err(format!("family {name} twice"));
            }
            helped = Some(name.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or("TYPE without kind")?;
            if helped.as_deref() != Some(name) {
                return Err(format!("TYPE {name} without its HELP first"));
            }
            family = Some((name.to_owned(), kind.to_owned()));
            continue;
        }
        let (fam, kind) = family.clone().ok_or("sample before any TYPE")?;
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| format!("no value: {line}"))?;
        let name = &line[..name_end];
        if !valid_metric_name(name) {
            return Err(format!("bad name {name}"));
        }
        let ok_name = match kind.as_str() {
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name.strip_suffix(s) == Some(&fam)),
            _ => name == fam,
        };
        if !ok_name {
            return Err(format!("sample {name} outside its family {fam}"));
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            loop {
                let start = chars.peek().map(|(i, _)| *i).ok_or("open labels")?;
                let eq = r[start..].find('=').ok_or("label without =")? + start;
                let key = &r[start..eq];
                if !valid_label_name(key) {
                    return Err(format!("bad label name {key}"));
                }
                while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                    chars.next();
                }
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err("label value not quoted".into());
                }
                let mut value = String::new();
                loop {
                    match chars.next().ok_or("unterminated value")?.1 {
                        '\\' => match chars.next().ok_or("dangling escape")?.1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            c => return Err(format!("bad escape \\{c}")),
                        },
                        '"' => break,
                        '\n' => return Err("raw newline in a value".into()),
                        c => value.push(c),
                    }
                }
                labels.push((key.to_owned(), value));
                match chars.next().ok_or("open labels")? {
                    (_, ',') => continue,
                    (i, '}') => {
                        rest = &r[i + 1..];
                        break;
                    }
                    (_, c) => return Err(format!("unexpected {c:?} after a label")),
                }
            }
        }
        let value = rest
            .strip_prefix(' ')
            .ok_or_else(|| format!("no space before the value: {line}"))?;
        if value.parse::<f64>().is_err() && !["NaN", "+Inf", "-Inf"].contains(&value) {
            return Err(format!("bad value {value:?}"));
        }
        out.push(Sample {
            name: name.to_owned(),
            labels,
            value: value.to_owned(),
        });
    }
    Ok(out)
}

#[test]
fn families_have_help_and_type_before_their_samples() {
    let mut x = Exposition::new();
    x.counter("wardgate_messages_total", "Messages decided.")
        .sample(&[("route", "orders"), ("action", "allowed")], 3u64)
        .sample(&[("route", "orders"), ("action", "blocked")], 1u64);
    x.gauge("wardgate_up", "Whether wardgate runs.")
        .sample(&[], 1u64);
    let text = x.into_string();
    assert_eq!(
        text,
        "# HELP wardgate_messages_total Messages decided.\n\
         # TYPE wardgate_messages_total counter\n\
         wardgate_messages_total{route=\"orders\",action=\"allowed\"} 3\n\
         wardgate_messages_total{route=\"orders\",action=\"blocked\"} 1\n\
         # HELP wardgate_up Whether wardgate runs.\n\
         # TYPE wardgate_up gauge\n\
         wardgate_up 1\n"
    );
    assert_eq!(read(&text).unwrap().len(), 3);
}

#[test]
fn a_family_without_samples_is_still_well_formed() {
    let mut x = Exposition::new();
    x.counter("wardgate_a_total", "A.");
    x.gauge("wardgate_b", "B.").sample(&[], 0u64);
    assert_eq!(read(&x.into_string()).unwrap().len(), 1);
}

#[test]
fn help_and_label_values_are_escaped() {
    let mut x = Exposition::new();
    x.gauge("wardgate_info", "a \\ b\nc")
        .sample(&[("cert", "a\"b\\c\nd")], 1u64);
    let text = x.into_string();
    assert!(
        text.starts_with("# HELP wardgate_info a \\\\ b\\nc\n"),
        "{text}"
    );
    let s = read(&text).unwrap();
    assert_eq!(
        s[0].labels,
        vec![("cert".to_owned(), "a\"b\\c\nd".to_owned())]
    );
}

#[test]
fn numbers_are_spelled_as_prometheus_reads_them() {
    let mut x = Exposition::new();
    x.gauge("wardgate_x", "X.")
        .sample(&[("v", "nan")], f64::NAN)
        .sample(&[("v", "inf")], f64::INFINITY)
        .sample(&[("v", "-inf")], f64::NEG_INFINITY)
        .sample(&[("v", "frac")], 0.25f64)
        .sample(&[("v", "big")], 1e21f64)
        .sample(&[("v", "neg")], -3i64)
        .sample(&[("v", "max")], u64::MAX);
    let s = read(&x.into_string()).unwrap();
    let values: Vec<_> = s.iter().map(|s| s.value.as_str()).collect();
    assert_eq!(
        values,
        [
            "NaN",
            "+Inf",
            "-Inf",
            "0.25",
            "1000000000000000000000",
            "-3",
            "18446744073709551615"
        ]
    );
}

#[test]
fn a_histogram_is_cumulative_with_inf_equal_to_count() {
    static BOUNDS: &[f64] = &[0.001, 0.01, 0.1];
    let h = Histogram::new(BOUNDS);
    for ms in [0.5, 0.9, 5.0, 50.0, 500.0, 500.0] {
        h.observe(Duration::from_secs_f64(ms / 1000.0));
    }
    let snap = h.snapshot();
    assert_eq!(snap.buckets, vec![(0.001, 2), (0.01, 3), (0.1, 4)]);
    assert_eq!(snap.count, 6);
    assert!((snap.sum - 1.0564).abs() < 1e-9, "{}", snap.sum);
    let mut x = Exposition::new();
    x.histogram(
        "wardgate_upstream_connect_duration_seconds",
        "Connect time.",
    )
    .sample(&[("route", "r")], &snap);
    let text = x.into_string();
    let s = read(&text).unwrap();
    let buckets: Vec<_> = s
        .iter()
        .filter(|s| s.name.ends_with("_bucket"))
        .map(|s| (s.labels[1].1.clone(), s.value.clone()))
        .collect();
    assert_eq!(
        buckets,
        [
            ("0.001".to_owned(), "2".to_owned()),
            ("0.01".into(), "3".into()),
            ("0.1".into(), "4".into()),
            ("+Inf".into(), "6".into())
        ]
    );
    assert!(text.contains("wardgate_upstream_connect_duration_seconds_count{route=\"r\"} 6\n"));
    assert!(text.contains("wardgate_upstream_connect_duration_seconds_sum{route=\"r\"} 1.0564"));
}

#[test]
fn an_observation_on_a_bound_counts_in_that_bucket() {
    static BOUNDS: &[f64] = &[1.0];
    let h = Histogram::new(BOUNDS);
    h.observe(Duration::from_secs(1));
    h.observe(Duration::from_secs(2));
    assert_eq!(h.snapshot().buckets, vec![(1.0, 1)]);
    assert_eq!(h.snapshot().count, 2);
}

#[test]
fn names_are_checked() {
    assert!(valid_metric_name("wardgate_messages_total"));
    assert!(valid_metric_name("a:b_c9"));
    assert!(!valid_metric_name("9a"));
    assert!(!valid_metric_name("wardgate-messages"));
    assert!(!valid_metric_name(""));
    assert!(valid_label_name("route"));
    assert!(!valid_label_name("__name__"));
    assert!(!valid_label_name("le-x"));
}

proptest! {
    /// Any label value, including quotes, backslashes, newlines and any
    /// Unicode, reads back as written.
    #[test]
    fn any_label_value_round_trips(v in any::<String>(), n in any::<u64>()) {
        let mut x = Exposition::new();
        x.counter("wardgate_t_total", "T.").sample(&[("k", &v)], n);
        let s = read(&x.into_string()).map_err(TestCaseError::fail)?;
        prop_assert_eq!(s.len(), 1);
        prop_assert_eq!(&s[0].labels[0].1, &v);
        prop_assert_eq!(&s[0].value, &n.to_string());
    }

    /// Any finite value reads back as the same number.
    #[test]
    fn any_gauge_value_round_trips(v in any::<f64>().prop_filter("finite", |v| v.is_finite())) {
        let mut x = Exposition::new();
        x.gauge("wardgate_g", "G.").sample(&[], v);
        let s = read(&x.into_string()).map_err(TestCaseError::fail)?;
        prop_assert_eq!(s[0].value.parse::<f64>().ok(), Some(v));
    }
}
