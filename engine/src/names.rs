//! Names that become paths: report names (`reports/<report>.<output>`), output names (files in
//! a stage's work directory and in `reports/`) and stage names. One rule for all of them,
//! checked at plan time, so no pipeline can write outside the project through a name.

/// Characters a name that becomes part of a file name may hold.
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// A report or output name: non-empty, at most 128 characters of letters, digits, `_`, `-` and
/// `.`, not starting with `.` (so never `..`, never absolute, never a hidden file).
pub fn check_file_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.len() > 128 {
        return Err(format!("is {} characters long (at most 128)", s.len()));
    }
    if s.starts_with('.') {
        return Err("starts with `.`".into());
    }
    match s.chars().find(|c| !allowed(*c)) {
        Some(c) => {
            Err(format!("contains `{}`: only letters, digits, `_`, `-` and `.` are allowed", c.escape_default()))
        }
        None => Ok(()),
    }
}

/// A stage name: as a file name, and without `.` (references use it to name an output).
pub fn check_stage_name(s: &str) -> Result<(), String> {
    check_file_name(s)?;
    if s.contains('.') {
        return Err("contains `.`, which separates a stage from its output in references".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_or_hide_are_rejected() {
        for bad in ["", "/etc/passwd", "../../x", "..", ".hidden", "a/b", "a\\b", "a b", "x\0y"] {
            assert!(check_file_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["dgex_table3", "epoch100", "g1", "dgex_fig1_lr", "a-b.c"] {
            assert_eq!(check_file_name(good), Ok(()), "{good:?}");
        }
        assert!(check_stage_name("train.model").is_err());
        assert!(check_stage_name("a[b=1]").is_err());
        assert_eq!(check_stage_name("train_d"), Ok(()));
        assert!(check_file_name(&"x".repeat(129)).is_err());
    }
}
