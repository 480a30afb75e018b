"""Application Auto Scaling for SageMaker endpoint variants (``reference/platform.md``
sections 1.8 and 5.1): scalable targets, target-tracking policies and scaling activities
kept in the platform's database (:mod:`.service`), and the loop in the server that acts
on them (:mod:`.scaler`)."""
