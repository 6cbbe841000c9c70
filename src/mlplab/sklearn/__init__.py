"""scikit-learn's MLPClassifier API on mlplab's training engines (the `sklearn` extra).

from mlplab.sklearn import MLPClassifier     # or: from mlplab import MLPClassifier
"""

from mlplab.sklearn.estimator import MLPClassifier
from mlplab.sklearn.tabular import TabularMLPClassifier

__all__ = ["MLPClassifier", "TabularMLPClassifier"]
