"""Networks (nn.Modules) and their losses: FBDD UNet construction, HFA UNet, Haar transform and loss."""

# The layer one FBDD or HFA network is trained to produce: one network per layer (Sec. 3.2, 3.3).
TRAINED_LAYERS = ("foreground", "background")
