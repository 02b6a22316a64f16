"""The generation engine: how a poem's next token is chosen, and what runs the model.

- settings.py: every generation setting, declared once (the CLI, the studio, the settings file
  and saved poems derive from it);
- text.py: first lines made printable, model text made safe, tokens turned into text;
- state.py: one poem as the processors see it (tokens, text, lines, stanzas, the open line);
- processors/: one module per constraint (guidance and blends, repetition penalty, n-gram ban,
  minimum and maximum lines, maximum stanzas), in one ordered list;
- draw.py: temperature, top-k and top-p, then the seeded draw; chain.py runs processors then draw;
- vectors.py: the step's quick reads of vocabulary-sized vectors (NumPy on the CPU);
- decode.py: one poem's decoding (state, chain, token budget, stats); plan.py: what it is given;
- backends/: the `Backend` protocol and the torch (transformers + peft) backend;
- poet.py: the `Poet`, which finds models, plans poems and streams them through a backend.

Batched writing (studio/core/batch.py) drives the same plans, state and processors.
"""
