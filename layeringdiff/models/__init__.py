"""Networks and losses: FBDD UNet construction, HFA UNet, Haar transform and loss."""
