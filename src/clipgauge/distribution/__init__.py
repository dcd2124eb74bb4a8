"""Distribution-level distances and diversity on CLIP image embeddings.

Numeric core (issue #22): :mod:`.mmd` (CMMD), :mod:`.frechet` (Fréchet distance on CLIP
features, clean-fid's recipe), :mod:`.kid` (KID as torchmetrics defines it), :mod:`.vendi`
(Vendi score) and :mod:`.bootstrap` (seeded percentile bootstrap intervals).

Nothing is imported eagerly here; import the submodule you need.
"""
