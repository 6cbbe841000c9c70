"""mlplab lab: build a network, watch it learn and look inside it, live, in the browser.

The page drives mlplab's own Trainer on real MNIST-family data (mlplab.lab.session), sees it
through Server-Sent Events (mlplab.lab.live), and looks inside the model between steps:
activations, a unit's weights, and the backward pass by hand beside autograd's.
"""
