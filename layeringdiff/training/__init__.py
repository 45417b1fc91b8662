"""LightningModules that train the networks of :mod:`layeringdiff.networks` (FBDDModule, HFAModule)."""
