"""The people in a video: faces linked into per-video person tracks, what each one's expression did, and how much
each one carried the verdict. Identities never leave a run: ids are per video, nothing is stored or named."""
