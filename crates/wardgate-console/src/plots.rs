//! Plots drawn on the server as SVG: no script, no external asset, and the
//! numbers behind each plot are in the same page as a table for those who
//! would rather read (and for screen readers).

use std::fmt::Write;

/// Escapes text for SVG/XML.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() => {}
            c => o.push(c),
        }
    }
    o
}

/// Colours for series, told apart by people with the common colour-vision
/// deficiencies (Okabe-Ito).
const COLOURS: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000",
];

/// Horizontal bars: `(label, value)`, largest first as given.
pub fn bars(title: &str, rows: &[(String, u64)]) -> String {
    let w = 560.0_f64;
    let row_h = 22.0_f64;
    let label_w = 200.0_f64;
    let h = 30.0 + row_h * rows.len().max(1) as f64;
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1) as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{t}" viewBox="0 0 {w} {h}" class="plot"><title>{t}</title><text x="0" y="16" class="plot-title">{t}</text>"#,
        t = esc(title)
    );
    if rows.is_empty() {
        let _ = write!(s, r#"<text x="0" y="44">nothing in this period</text>"#);
    }
    for (i, (label, v)) in rows.iter().enumerate() {
        let y = 26.0 + row_h * i as f64;
        let bw = ((w - label_w - 60.0) * (*v as f64) / max).max(1.0);
        let _ = write!(
            s,
            r#"<text x="0" y="{ty}" class="plot-label">{l}</text><rect x="{label_w}" y="{y}" width="{bw:.1}" height="{bh}" fill="{c}"/><text x="{vx:.1}" y="{ty}">{v}</text>"#,
            ty = y + 14.0,
            l = esc(&truncate(label, 28)),
            bh = row_h - 6.0,
            c = COLOURS[0],
            vx = label_w + bw + 4.0,
        );
    }
    s.push_str("</svg>");
    s
}

/// Lines over time: buckets (start labels) on x, one series per name.
pub fn lines(title: &str, buckets: &[String], series: &[(String, Vec<u64>)]) -> String {
    let (w, h) = (720.0_f64, 260.0_f64);
    let (left, right, top, bottom) = (50.0, 150.0, 28.0, 30.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let n = buckets.len().max(2) as f64 - 1.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{t}" viewBox="0 0 {w} {h}" class="plot"><title>{t}</title><text x="0" y="16" class="plot-title">{t}</text>"#,
        t = esc(title)
    );
    let _ = write!(
        s,
        r##"<line x1="{left}" y1="{b}" x2="{r}" y2="{b}" stroke="#888"/><line x1="{left}" y1="{top}" x2="{left}" y2="{b}" stroke="#888"/><text x="{lx}" y="{ty}" text-anchor="end">{max}</text><text x="{lx}" y="{b}" text-anchor="end">0</text>"##,
        b = top + ph,
        r = left + pw,
        lx = left - 4.0,
        ty = top + 10.0,
        max = max as u64,
    );
    if let (Some(first), Some(last)) = (buckets.first(), buckets.last()) {
        let _ = write!(
            s,
            r#"<text x="{left}" y="{y}">{f}</text><text x="{r}" y="{y}" text-anchor="end">{l}</text>"#,
            y = h - 8.0,
            r = left + pw,
            f = esc(first),
            l = esc(last),
        );
    }
    for (i, (name, values)) in series.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let mut pts = String::new();
        for (j, v) in values.iter().enumerate() {
            let x = left + pw * j as f64 / n;
            let y = top + ph - ph * (*v as f64) / max;
            let _ = write!(pts, "{x:.1},{y:.1} ");
            if *v > 0 {
                // A point is seen even when it is the only one.
                let _ = write!(s, r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{c}"/>"#);
            }
        }
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{p}"/><rect x="{kx}" y="{ky}" width="10" height="10" fill="{c}"/><text x="{tx}" y="{ty}">{n}</text>"#,
            p = pts.trim_end(),
            kx = left + pw + 10.0,
            ky = top + 16.0 * i as f64,
            tx = left + pw + 24.0,
            ty = top + 16.0 * i as f64 + 9.0,
            n = esc(&truncate(name, 18)),
        );
    }
    s.push_str("</svg>");
    s
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_cannot_break_out_of_the_svg() {
        let svg = bars("t", &[("<script>alert(1)</script>".into(), 3)]);
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"));
        let svg = lines(
            "a\"b",
            &["x".into(), "y".into()],
            &[("<r>".into(), vec![1, 2])],
        );
        assert!(!svg.contains("<r>") && !svg.contains("a\"b"), "{svg}");
    }

    #[test]
    fn bars_scale_to_the_largest() {
        let svg = bars("t", &[("a".into(), 10), ("b".into(), 5)]);
        let widths: Vec<f64> = svg
            .split("width=\"")
            .skip(1)
            .filter_map(|p| p.split('"').next()?.parse().ok())
            .collect();
        assert_eq!(widths.len(), 2);
        assert!((widths[0] / widths[1] - 2.0).abs() < 0.01, "{widths:?}");
    }
}
