"""One module per agent; each declares a `streams.processing.TableUpdate`: the table it
writes, the key of an event and the per-event function. `streams.processing` does the
rest (decoding, dead letters, key checks, the changelog hand-off, acks)."""
