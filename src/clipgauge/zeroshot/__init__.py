"""Zero-shot uses of CLIP similarity beyond scoring generations: classification of images against labels
(:func:`~clipgauge.zeroshot.classify.classify`, the ``zeroshot`` metric run through :func:`clipgauge.score`) and
retrieval (:func:`~clipgauge.zeroshot.retrieve.retrieve`: text → images, image → texts, recall@k)."""
