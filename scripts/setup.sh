#!/usr/bin/env bash
# Create .venv and install the project with pinned versions. Idempotent: a second run is fast.
#
# The bundled local model runs in llama-cpp-python's server, which has no Linux wheel on PyPI: it is compiled
# once per machine (4 to 15 minutes on 2 cores, by CPU) into ~/.cache/incibot/wheels and installed from there. The build
# is pinned to a portable x86-64 level (AVX2, FMA, F16C; no AVX-512, no AMX), never to the build host's CPU:
# llama.cpp's default -march=native build crashes on machines with AMX, and pip's own cache would hand such a
# build to any later install. INCIBOT_LOCAL_LLM=0 installs without the local model (nothing is compiled): then
# point the bot at an OpenAI-compatible server (README, "Switching the LLM").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LOCAL_LLM=${INCIBOT_LOCAL_LLM:-1}
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
-DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
llama_version=$(sed -n 's/^llama-cpp-python==//p' constraints.txt)
build_id=$(echo "$llama_version $LLAMA_CMAKE_ARGS" | sha256sum | cut -c1-12)
wheels=${XDG_CACHE_HOME:-$HOME/.cache}/incibot/wheels/llama-cpp-python-$llama_version-$build_id

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.incibot-installed
want=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)-local-llm-$LOCAL_LLM
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  pip_install() { .venv/bin/python -m pip install --quiet "$@" 2>&1 | grep -v "is ignored" || true; }
  pip_install --upgrade pip
  extras=dev,eval
  if [ "$LOCAL_LLM" = 1 ]; then
    extras=dev,eval,local-llm
    if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
      echo "building llama-cpp-python $llama_version for portable x86-64 (AVX2), once per machine (4-15 min)..." >&2
      rm -rf "$wheels.partial"
      CMAKE_ARGS="$LLAMA_CMAKE_ARGS" .venv/bin/python -m pip wheel --quiet --no-deps --no-cache-dir \
        -w "$wheels.partial" "llama-cpp-python==$llama_version" 2>&1 | { grep -v "is ignored" || true; }
      ls "$wheels.partial"/llama_cpp_python-*.whl >/dev/null  # the build failed if there is no wheel
      mv "$wheels.partial" "$wheels"
    fi
    # Ours replaces whatever is installed: an earlier install may hold a -march=native build from pip's cache.
    pip_install --no-deps --force-reinstall "$wheels"/llama_cpp_python-*.whl
  fi
  pip_install -c constraints.txt --find-links "$wheels" -e ".[$extras]"
  .venv/bin/python -c "import bot, chromadb, onnxruntime, presidio_analyzer" # fail here, not later
  if [ "$LOCAL_LLM" = 1 ]; then
    # The library must say it was built without AVX-512/AMX code (compile-time features), and its server
    # must import: the bot runs the model as `python -m llama_cpp.server`.
    .venv/bin/python - <<'EOF'
import llama_cpp, llama_cpp.server.app  # noqa: E401
info = llama_cpp.llama_print_system_info().decode()
bad = [f for f in ("AVX512", "AMX") if f"{f} = 1" in info or f"{f}_INT8 = 1" in info]
if bad:
    raise SystemExit(f"llama-cpp-python was built with {'/'.join(bad)} code, which crashes on some CPUs: {info}")
EOF
  fi
  echo "$want" > "$stamp"
fi
