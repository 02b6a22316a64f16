"""Co-writing, line by line: candidate next lines to accept, edit, steer or rewrite (UI-free).

The studio's line-by-line mode and `poetstudio suggest` are shells over this package:

- writer.py    `CoWriter(poet, emotion, params, lines)`: `stream(k, steer, cancel)` yields
               `LineUpdate(row, text, done)` for K candidates written as batched rows (one
               forward per token), then `candidates` holds each `Candidate`; `accept(text)`,
               `undo()`, `prefill()`, `rewrite(n, k, steer, cancel)` (reranked by the lines after
               it), `finish(cancel)`, `reload()` (after a model changed). `emotion`, `params`
               and `lines` may change between runs; the cache keeps what still matches.
- candidate.py `LineUpdate`, `Candidate` and why a candidate ended (END_*).
- prefix.py    the accepted poem's KV cache kept between runs: accepting a line reads that line.
- rerank.py    a rewrite's candidates ranked by log p(lines after | lines before, candidate).
- scores.py    a candidate's scores: model log-probability, EmoLex and judge emotion scores,
               syllables, rhyme sound.
- draft.py     the poem being co-written with each line's provenance, saved after every change.
- words.py     checks the steering words (studio/core/generation/steer.py's `Steer`: use,
               rhyme_with, topic; processors in studio/core/generation/processors/).
- poemtext.py  the poem so far: lines from text or bytes, token ids line by line.
- opening.py   a candidate line opens with words, not a break.
"""
