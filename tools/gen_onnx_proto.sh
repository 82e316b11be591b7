#!/usr/bin/env bash
# Regenerates src/onnx/proto.rs (prost 0.14 types for onnx.proto). Run by hand, never at build time:
# it needs protoc (apt-get install protobuf-compiler) and the onnx wheel (pip install onnx).
set -euo pipefail
out="$(cd "$(dirname "$0")/.." && pwd)/src/onnx/proto.rs"
work="$(mktemp -d)"
proto="$(python3 -c 'import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), "onnx.proto"))')"
version="$(python3 -c 'import onnx; print(onnx.__version__)')"
cp "$proto" "$work/onnx.proto"
mkdir "$work/src"
cat > "$work/Cargo.toml" <<'TOML'
[package]
name = "gen-onnx-proto"
version = "0.1.0"
edition = "2021"
[dependencies]
prost-build = "0.14"
TOML
cat > "$work/src/main.rs" <<'RS'
fn main() {
    let out = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    prost_build::Config::new()
        .disable_comments(["."])
        .out_dir(&out)
        .compile_protos(&["onnx.proto"], &["."])
        .unwrap();
}
RS
(cd "$work" && cargo run -q -- "$work")
{
  echo "// Generated once by tools/gen_onnx_proto.sh with prost-build 0.14 from onnx.proto of the onnx $version"
  echo '// wheel (comments dropped). Do not edit; regenerate instead.'
  cat "$work/onnx.rs"
} > "$out"
rm -rf "$work"
echo "wrote $out"
