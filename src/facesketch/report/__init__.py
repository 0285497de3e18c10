"""Human-facing output: image grids, loss/metric plots, the run report and the demo page."""
