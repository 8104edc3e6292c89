"""The models of the paper, one module each, with the Lightning module that trains it beside it."""
