//! `get`, `set`, `delete` and `clear`: single entries from the shell.

use super::stats::print;
use super::{key_arg, open, output_path, Failure, Outcome, DAMAGED_OR_MISSING, OK, USAGE_OR_IO};
use crate::bytes::escape;
use crate::core::Expiration;
use crate::{Cli, Ttl};
use std::io::{Read, Write};
use std::path::Path;

pub fn get(cli: &Cli, file: &Path, key: &str, output: Option<&Path>, escaped: bool) -> Outcome {
    let key = key_arg(file, key, escaped)?;
    let output = output_path(file, output)?;
    let storage = open(cli, file, false)?;
    let found = storage.get(&key).map_err(|e| Failure::core(file, &e))?;
    let Some((value, _)) = found else {
        return Err(Failure::new(
            DAMAGED_OR_MISSING,
            file,
            format!("no live entry under key {}", escape(&key)),
        ));
    };
    match output {
        Some(out) => std::fs::write(out, &value)
            .map_err(|e| Failure::new(USAGE_OR_IO, out, format!("cannot write: {e}")))?,
        None => {
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = stdout.write_all(&value).and_then(|()| stdout.flush()) {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    return Err(Failure::new(
                        USAGE_OR_IO,
                        file,
                        format!("cannot write to stdout: {e}"),
                    ));
                }
            }
        }
    }
    Ok(OK)
}

pub fn set(
    cli: &Cli,
    file: &Path,
    key: &str,
    value: Option<&str>,
    expire: Option<&str>,
    escaped: bool,
) -> Outcome {
    let key = key_arg(file, key, escaped)?;
    let expire = expire
        .map(crate::parse_expire)
        .transpose()
        .map_err(|e| Failure::new(USAGE_OR_IO, file, e))?;
    let value = match value {
        Some("-") | None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut buf)
                .map_err(|e| Failure::new(USAGE_OR_IO, file, format!("cannot read stdin: {e}")))?;
            buf
        }
        Some(text) => text.as_bytes().to_vec(),
    };
    let expiration = match expire {
        Some(Ttl::After(d)) => Expiration::After(d),
        Some(Ttl::Never) | None => Expiration::Never,
    };
    let storage = open(cli, file, true)?;
    storage
        .set(&key, &value, expiration)
        .map_err(|e| Failure::core(file, &e))?;
    Ok(OK)
}

pub fn delete(cli: &Cli, file: &Path, keys: &[String], escaped: bool) -> Outcome {
    let keys = keys
        .iter()
        .map(|k| key_arg(file, k, escaped))
        .collect::<Result<Vec<_>, _>>()?;
    let storage = open(cli, file, false)?;
    let mut missing = Vec::new();
    for key in &keys {
        if !storage.delete(key).map_err(|e| Failure::core(file, &e))? {
            missing.push(escape(key));
        }
    }
    print(
        file,
        &format!(
            "deleted {} of {} keys ({} not found)\n",
            keys.len() - missing.len(),
            keys.len(),
            missing.len()
        ),
    )?;
    // Like `get` (and `rm`): a key that was not there is exit code 1, the others are
    // deleted all the same.
    if missing.is_empty() {
        return Ok(OK);
    }
    Err(Failure::new(
        DAMAGED_OR_MISSING,
        file,
        format!("no live entry under key {}", missing.join(", ")),
    ))
}

pub fn clear(cli: &Cli, file: &Path) -> Outcome {
    let storage = open(cli, file, false)?;
    let before = storage.inspect(&[]).map_err(|e| Failure::core(file, &e))?;
    storage.clear().map_err(|e| Failure::core(file, &e))?;
    print(file, &format!("cleared {}\n", super::entries(before.count)))?;
    Ok(OK)
}
