\set ON_ERROR_STOP 1
\timing on
INSERT INTO events (id, kind, ts, session_id, step_id, payload, event_type, status, provider, model,
    input_tokens, output_tokens, latency_ms, api_key_hash, tenant)
SELECT md5(:'run' || g::text), 'llm', now() - (g % 86400) * interval '1 second', 'session-' || (g / 500),
    'turn-' || (g % 7), repeat('x', 300), 'llm', 'ok', 'anthropic', 'claude-model-' || (g % 50),
    1000 + g % 100, 250, 1840 + g % 500, 'key-' || (g % 1000), ''
FROM generate_series(1, 200000) g
ON CONFLICT DO NOTHING;
