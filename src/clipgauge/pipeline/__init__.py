"""The one scoring pipeline: options and loaded plan (:mod:`.plan`), the scoring step (:mod:`.score`), Arrow
columns (:mod:`.tables`) and the summary derived from the metrics (:mod:`.summary`)."""
