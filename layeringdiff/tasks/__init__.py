"""The functions behind the entry points: ``train(cfg)``, ``evaluate(cfg)``, ``infer(cfg)``."""
