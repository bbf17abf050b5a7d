//! A 32-byte key kept in a file (base64, one line) that only its owner may read: the signing key
//! of checkpoints, the master key of subject keys, the webhook secrets' key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::io::Write as _;
use std::path::Path;

/// Why a key file cannot be used (English and Chinese).
#[derive(Debug, thiserror::Error)]
#[error("key file {path}: {en}\n错误：密钥文件 {path}：{zh}")]
pub struct KeyFileError {
    pub path: String,
    pub en: String,
    pub zh: String,
}

fn error(path: &Path, en: impl Into<String>, zh: impl Into<String>) -> KeyFileError {
    KeyFileError {
        path: path.display().to_string(),
        en: en.into(),
        zh: zh.into(),
    }
}

/// Reads the key at `path`, refusing a file other users may read or one that is not a key.
pub fn load(path: &Path) -> Result<[u8; 32], KeyFileError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| {
            error(
                path,
                format!("cannot be read: {e}"),
                format!("无法读取：{e}"),
            )
        })?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(error(
                path,
                "may be read by other users: make it readable by its owner only (chmod 600)",
                "其他用户可以读取：请只允许其所有者读取（chmod 600）",
            ));
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        error(
            path,
            format!("cannot be read: {e}"),
            format!("无法读取：{e}"),
        )
    })?;
    STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| {
            error(
                path,
                "is not a key (base64 of 32 bytes)",
                "不是密钥（应为 32 字节的 base64）",
            )
        })
}

/// Writes `key` to a new file at `path` (readable by its owner only); an existing file is never
/// replaced.
pub fn create(path: &Path, key: &[u8; 32]) -> Result<(), KeyFileError> {
    let mut file = crate::files::create_private(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            error(
                path,
                "already exists, and a key file is never replaced (what was sealed or signed with it would be lost)",
                "已存在，密钥文件不会被替换（否则用它加密或签名的内容将无法使用）",
            )
        } else {
            error(path, format!("cannot be created: {e}"), format!("无法创建：{e}"))
        }
    })?;
    writeln!(file, "{}", STANDARD.encode(key))
        .and_then(|()| file.sync_all())
        .map_err(|e| {
            error(
                path,
                format!("cannot be written: {e}"),
                format!("无法写入：{e}"),
            )
        })
}

/// Reads the key at `path`, or writes a new random one there (readable by its owner only) when
/// there is no file. Processes starting at once all end up with the one key written first.
pub fn load_or_create(path: &Path) -> Result<[u8; 32], KeyFileError> {
    if path.exists() {
        return load(path);
    }
    let key: [u8; 32] = rand::random();
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(
        ".{}.{:08x}.tmp",
        std::process::id(),
        rand::random::<u32>()
    ));
    let tmp = std::path::PathBuf::from(name);
    let written = crate::files::create_private(&tmp).and_then(|mut f| {
        writeln!(f, "{}", STANDARD.encode(key))?;
        f.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load(path),
        Err(e) => Err(error(
            path,
            format!("cannot be created: {e}"),
            format!("无法创建：{e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_made_private_once_and_refused_when_others_may_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let key = load_or_create(&path).unwrap();
        assert_eq!(load_or_create(&path).unwrap(), key);
        assert_eq!(load(&path).unwrap(), key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
            let e = load(&path).unwrap_err();
            assert!(
                e.en.contains("other users") && e.zh.contains("chmod 600"),
                "{e}"
            );
        }
        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, "not a key").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(load(&bad).unwrap_err().en.contains("not a key"));
        let made = dir.path().join("made.key");
        create(&made, &[7; 32]).unwrap();
        assert_eq!(load(&made).unwrap(), [7; 32]);
        assert!(
            create(&made, &[8; 32])
                .unwrap_err()
                .en
                .contains("never replaced")
        );
    }
}
