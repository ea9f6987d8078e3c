"""Studies: one-off measurements that answered a question about the toolkit (how close LAST runs to the hardware,
whether the edge library's memory stays flat, which bone check separates joint orders, ...). They run from a
checkout of the repository (`python -m experiments.<name>`), may import every package, and are not installed:
nothing in core, train, converters, edge or benchmarks imports them. The product's measurements are
`python -m benchmarks.run` / `compare` / `calibrate`."""
