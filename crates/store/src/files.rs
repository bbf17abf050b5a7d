//! Files Funnel keeps on disk (the SQLite log, read models, checkpoints, webhook subscriptions and
//! their key) are readable by their owner only: files `0600`, folders Funnel makes `0700`. SQLite
//! gives a database's `-wal` and `-shm` the mode of the database file, so making the database file
//! private first covers them too. A folder the user named is left as it is.

use std::fs::File;
use std::io;
use std::path::Path;

/// Makes `dir` and its missing parents, each new one `0700`. Folders that exist are not changed.
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Creates a new file readable and writable by its owner only; fails if it exists.
pub fn create_private(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Makes sure the file a database is about to open at `path` is private: an empty `0600` file is
/// made when there is none, and an existing one (with its `-wal` and `-shm`) loses any group or
/// other permissions. Paths that are not plain files (`:memory:`, URIs) are left to SQLite.
pub fn prepare_private_file(path: &Path) -> io::Result<()> {
    let text = path.to_string_lossy();
    if text.is_empty() || text.starts_with(':') || text.starts_with("file:") {
        return Ok(());
    }
    match create_private(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut p = path.as_os_str().to_os_string();
                p.push(suffix);
                restrict(Path::new(&p))?;
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn restrict(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mode = meta.permissions().mode();
    if meta.is_file() && mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict(_: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_files_and_folders_are_private_and_open_ones_are_made_so() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        create_private_dir_all(&nested).unwrap();
        assert_eq!((mode(&dir.path().join("a")), mode(&nested)), (0o700, 0o700));
        let db = nested.join("x.db");
        prepare_private_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        let old = nested.join("old.db");
        std::fs::write(&old, b"").unwrap();
        std::fs::write(nested.join("old.db-wal"), b"").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        prepare_private_file(&old).unwrap();
        assert_eq!(mode(&old), 0o600);
        assert_eq!(mode(&nested.join("old.db-wal")) & 0o077, 0);
    }
}
