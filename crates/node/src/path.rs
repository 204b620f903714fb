//! Path rules (`PathUtils.validatePath`): absolute, no trailing slash, no empty, `.` or `..`
//! components, and none of the control or private-use characters ZooKeeper refuses.

/// Whether `path` is a valid znode path.
pub fn is_valid(path: &str) -> bool {
    if path.is_empty() || !path.starts_with('/') {
        return false;
    }
    if path == "/" {
        return true;
    }
    if path.ends_with('/') {
        return false;
    }
    for comp in path[1..].split('/') {
        if comp.is_empty() || comp == "." || comp == ".." {
            return false;
        }
    }
    !path.chars().any(|c| {
        let c = c as u32;
        c == 0
            || (0x01..=0x1f).contains(&c)
            || (0x7f..=0x9f).contains(&c)
            || (0xd800..=0xf8ff).contains(&c)
            || (0xfff0..=0xffff).contains(&c)
    })
}

/// The parent part of `path` for create/delete (`path[..lastSlash]`), `None` if there is no
/// slash or a NUL. The root's parent is "" which the tree treats as `/`.
pub fn parent_for_write(path: &str) -> Option<&str> {
    if path.contains('\0') {
        return None;
    }
    let i = path.rfind('/')?;
    Some(if i == 0 { "/" } else { &path[..i] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zookeeper_path_rules() {
        for ok in ["/", "/a", "/a/b", "/a.b", "/..a", "/zookeeper"] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "/a/",
            "//a",
            "/a//b",
            "/a/.",
            "/a/../b",
            "/a\u{1}",
            "/\u{e000}",
        ] {
            assert!(!is_valid(bad), "{bad:?}");
        }
        assert_eq!(parent_for_write("/a"), Some("/"));
        assert_eq!(parent_for_write("/a/b"), Some("/a"));
        assert_eq!(parent_for_write("a"), None);
    }
}
