"""Collaborative models: BPR, SASRec and the prior that mixes them with popularity (priors and item vectors)."""
