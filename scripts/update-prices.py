#!/usr/bin/env python3
"""Builds crates/sonde-pricing/data/prices.json from LiteLLM's model price table.

Usage: scripts/update-prices.py [PATH to model_prices_and_context_window.json]
(default: ../shared/data/pricing/litellm_model_prices_and_context_window.json)

Keeps every model with a per-token input or output price; prices stay USD per token.
Keys: p provider, i input, o output, cr cache read, cw cache write (5 min), cw1h cache
write (1 hour), r reasoning, t long-context threshold (prompt tokens), ti/to/tcr/tcw the
prices above it.
"""
import json
import sys

src = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/pricing/litellm_model_prices_and_context_window.json"
data = json.load(open(src))
out = {}
for name, m in sorted(data.items()):
    if name == "sample_spec" or not isinstance(m, dict):
        continue
    i, o = m.get("input_cost_per_token"), m.get("output_cost_per_token")
    if i is None and o is None:
        continue
    e = {"p": m.get("litellm_provider"), "i": i, "o": o,
         "cr": m.get("cache_read_input_token_cost"),
         "cw": m.get("cache_creation_input_token_cost"),
         "cw1h": m.get("cache_creation_input_token_cost_above_1hr"),
         "r": m.get("output_cost_per_reasoning_token")}
    for threshold in ("200k", "272k"):
        ti = m.get(f"input_cost_per_token_above_{threshold}_tokens")
        if ti is not None:
            e["t"] = int(threshold[:-1]) * 1000
            e["ti"] = ti
            e["to"] = m.get(f"output_cost_per_token_above_{threshold}_tokens")
            e["tcr"] = m.get(f"cache_read_input_token_cost_above_{threshold}_tokens")
            e["tcw"] = m.get(f"cache_creation_input_token_cost_above_{threshold}_tokens")
            break
    out[name] = {k: v for k, v in e.items() if v is not None}
json.dump(out, open("crates/sonde-pricing/data/prices.json", "w"), separators=(",", ":"), sort_keys=True)
print(f"{len(out)} models")
