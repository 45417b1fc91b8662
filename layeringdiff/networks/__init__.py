"""Networks (nn.Modules) and their losses: FBDD UNet construction, HFA UNet, Haar transform and loss."""
