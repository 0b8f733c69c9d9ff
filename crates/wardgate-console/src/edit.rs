//! The console's changes to what lives on disk: a route's `enforcement` in
//! the configuration file (comments and layout kept; the whole file checked
//! before it replaces the old one) and a device's enrolment with the CA.

use std::path::Path;

/// Sets `[[route]] id = ROUTE`'s `enforcement` to `monitor` or `enforce` in
/// the file at `path`. Returns false when it already was. The new text is
/// written beside the file, checked as a reload would check it (a file that
/// does not validate is never put in place), and renamed over it with the
/// old file's permissions.
pub fn set_enforcement(path: &Path, route: &str, monitor: bool) -> Result<bool, String> {
    // A link is the configuration management's to point: replacing it with a
    // file would quietly take the site off the file it manages.
    let link = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if link.file_type().is_symlink() {
        return Err(format!(
            "{} is a symbolic link: edit the file it points to and run `wardgate reload`",
            path.display()
        ));
    }
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > wardgate_config::MAX_CONFIG_BYTES {
        return Err(format!("{} is too large", path.display()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| format!("{} does not parse: {e}", path.display()))?;
    let want = if monitor { "monitor" } else { "enforce" };
    {
        let routes = doc
            .get_mut("route")
            .and_then(|r| r.as_array_of_tables_mut())
            .ok_or_else(|| format!("{} has no [[route]] tables", path.display()))?;
        let mut matching = routes
            .iter_mut()
            .filter(|t| t.get("id").and_then(|i| i.as_str()) == Some(route));
        let table = matching
            .next()
            .ok_or_else(|| format!("no [[route]] with id {route:?} in {}", path.display()))?;
        let current = table
            .get("enforcement")
            .and_then(|e| e.as_str())
            .unwrap_or("enforce")
            .to_owned();
        if current == want {
            return Ok(false);
        }
        table.insert("enforcement", toml_edit::value(want));
        if matching.next().is_some() {
            return Err(format!(
                "two [[route]] tables have id {route:?}: fix the file first"
            ));
        }
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".wardgate-console-")
        .suffix(".toml")
        .tempfile_in(dir)
        .map_err(|e| {
            format!(
                "wardgate cannot write in {} ({e}): edit the file by hand and run `wardgate reload`",
                dir.display()
            )
        })?;
    {
        use std::io::Write;
        tmp.write_all(doc.to_string().as_bytes())
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| format!("writing {}: {e}", tmp.path().display()))?;
    }
    wardgate_config::Config::load(tmp.path()).map_err(|e| {
        format!("the file would not validate with that change, so it was left as it was: {e}")
    })?;
    std::fs::set_permissions(tmp.path(), meta.permissions())
        .map_err(|e| format!("{}: {e}", tmp.path().display()))?;
    tmp.persist(path).map_err(|e| {
        format!(
            "replacing {} ({}): edit the file by hand and run `wardgate reload`",
            path.display(),
            e.error
        )
    })?;
    Ok(true)
}

/// Removes what an enrolment interrupted by a crash left in the CA's
/// directory (a temporary directory that may hold a private key).
pub fn sweep_enrolments(data_dir: &Path) {
    let Ok(rd) = std::fs::read_dir(wardgate_tls::Ca::dir_of(data_dir)) else {
        return;
    };
    for e in rd.flatten() {
        if e.file_name().to_string_lossy().starts_with("enrol-") && e.path().is_dir() {
            if let Err(err) = std::fs::remove_dir_all(e.path()) {
                tracing::warn!(error = %err, path = %e.path().display(), "cannot remove an interrupted enrolment");
            }
        }
    }
}

/// A device's new certificate.
pub fn enrol(
    data_dir: &Path,
    device: &str,
    csr: Option<&str>,
    days: i64,
) -> Result<crate::web::Enrolled, String> {
    let ca = wardgate_tls::Ca::load(data_dir).map_err(|e| e.to_string())?;
    // The key, when the CA makes it, exists on disk only in a private
    // temporary directory for the moment it takes to read it back.
    let out = tempfile::Builder::new()
        .prefix("enrol-")
        .tempdir_in(wardgate_tls::Ca::dir_of(data_dir))
        .map_err(|e| e.to_string())?;
    let e = match csr {
        Some(pem) => ca.sign_request(device, pem, out.path(), days),
        None => ca.enroll(device, out.path(), days),
    }
    .map_err(|e| e.to_string())?;
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    Ok(crate::web::Enrolled {
        device: device.to_owned(),
        serial: e.cert.serial.clone(),
        not_after: e.cert.not_after.clone(),
        certificate_pem: read(&e.cert_path)?,
        private_key_pem: e.key_path.as_deref().map(read).transpose()?,
        ca_pem: ca.certificate_pem().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = r#"# the site
[gateway]
data_dir = "data"

[[device]]
id = "ehr"
kind = "ehr"
addresses = ["127.0.0.2"]

[[device]]
id = "pumps"
kind = "infusion-pump-server"
addresses = ["127.0.0.3"]

[[route]]
id = "orders"   # keep this comment
protocol = "hl7-mllp"
listen = "127.0.0.1:12575"
upstream = "127.0.0.3:2575"
senders = ["ehr"]
messages = ["ADT"]
"#;

    #[test]
    fn the_switch_edits_one_key_and_keeps_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("site.toml");
        std::fs::write(&path, SITE).expect("write");
        wardgate_config::Config::load(&path).expect("the test site is valid");
        assert!(set_enforcement(&path, "orders", true).expect("set"));
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("enforcement = \"monitor\""), "{text}");
        assert!(text.contains("# keep this comment") && text.starts_with("# the site"));
        let v = wardgate_config::Config::load(&path).expect("valid");
        assert!(v.routes[0].monitor);
        assert!(!set_enforcement(&path, "orders", true).expect("again"));
        assert!(set_enforcement(&path, "orders", false).expect("back"));
        assert!(!wardgate_config::Config::load(&path).expect("valid").routes[0].monitor);
        assert!(set_enforcement(&path, "nope", true).is_err());
    }

    #[test]
    fn a_symbolic_link_is_not_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("real.toml");
        std::fs::write(&real, SITE).expect("write");
        let link = dir.path().join("site.toml");
        std::os::unix::fs::symlink(&real, &link).expect("link");
        let err = set_enforcement(&link, "orders", true).expect_err("refused");
        assert!(err.contains("symbolic link"), "{err}");
        assert!(std::fs::symlink_metadata(&link)
            .expect("meta")
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&real).expect("read"), SITE);
    }

    #[test]
    fn a_file_that_would_not_validate_is_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("site.toml");
        // Valid TOML, invalid site: the route's sender is no device.
        let bad = SITE.replace("senders = [\"ehr\"]", "senders = [\"ghost\"]");
        std::fs::write(&path, &bad).expect("write");
        let err = set_enforcement(&path, "orders", true).expect_err("refused");
        assert!(err.contains("would not validate"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), bad);
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("ls").count(),
            1,
            "no temporary left"
        );
    }
}
