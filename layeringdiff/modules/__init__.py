"""LightningModules: FBDD training and HFA training."""
