"""repcompare: compare the layer representations of two vision networks."""
