#!/usr/bin/env bash
# Checks the fixtures against lash itself: each session's lines are deserialized with
# lash-trace's own TraceRecord at the commit the session imitates (make_fixtures.py's
# PROFILES) and serialized back, which must give the line unchanged (no field lash did
# not have then, none missing). Needs a clone of Ascending-AI/lash and crates.io; not
# part of ./scripts/test (it needs lash's sources), run by hand when fixtures change:
#   LASH_REPO=/path/to/lash.git crates/sonde-lash/tests/data/check/check_with_lash.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=${LASH_REPO:?LASH_REPO names a clone of Ascending-AI/lash}
work=${WORK:-$(mktemp -d)}
mkdir -p "$work/sansio/src" "$work/checker/src"
cat > "$work/sansio/Cargo.toml" <<'TOML'
[package]
name = "lash-sansio"
version = "0.0.0"
edition = "2024"
TOML
# lash-trace uses one thing of lash-sansio: a poison-recovering Mutex::lock.
cat > "$work/sansio/src/lib.rs" <<'RS'
pub mod sync {
    use std::sync::{Mutex, MutexGuard};
    pub trait MutexExt<T: ?Sized> {
        fn lock_recover(&self) -> MutexGuard<'_, T>;
    }
    impl<T: ?Sized> MutexExt<T> for Mutex<T> {
        fn lock_recover(&self) -> MutexGuard<'_, T> {
            self.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
        }
    }
}
RS
members='"sansio", "checker"'
deps=""
for pair in v1:a4960b174 v2may:2db2378fc v2jun:7773f3bd0 v2:85063fe25 v3:d6b430030 \
    v4:751c55fe9 v5:771e875f2 v6:7eac33e71 v7:9a2c0b3ce; do
  tag=${pair%%:*}; commit=${pair##*:}
  dir=crates/lash-trace
  git -C "$repo" cat-file -e "$commit:$dir/src/lib.rs" 2>/dev/null || dir=lash-trace
  mkdir -p "$work/$tag/src"
  for f in $(git -C "$repo" ls-tree -r --name-only "$commit" "$dir/src"); do
    rel=${f#"$dir"/}
    mkdir -p "$work/$tag/$(dirname "$rel")"
    git -C "$repo" show "$commit:$f" > "$work/$tag/$rel"
  done
  cat > "$work/$tag/Cargo.toml" <<TOML
[package]
name = "lash-trace-$tag"
version = "0.0.0"
edition = "2024"
[features]
otel = []
[dependencies]
lash-sansio = { path = "../sansio" }
chrono = { version = "0.4", features = ["serde"] }
serde = { version = "1", features = ["derive"] }
serde_json = "1"
sha2 = "0.10"
thiserror = "2"
uuid = { version = "1", features = ["v4"] }
TOML
  members="$members, \"$tag\""
  deps="$deps
lash_trace_$tag = { package = \"lash-trace-$tag\", path = \"../$tag\" }"
done
printf '[workspace]\nresolver = "3"\nmembers = [%s]\n' "$members" > "$work/Cargo.toml"
printf '[package]\nname = "checker"\nversion = "0.0.0"\nedition = "2024"\n[dependencies]\nserde_json = "1"%s\n' "$deps" > "$work/checker/Cargo.toml"
cp "$here/checker.rs" "$work/checker/src/main.rs"
(cd "$work" && cargo build -q)
"$work/target/debug/checker" "$here"/../lash-v*.jsonl | tee /dev/stderr | tail -1 | grep -qx '0 lines differ'
