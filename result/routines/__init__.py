"""Single-shot analysis routines shipped with labspool."""
