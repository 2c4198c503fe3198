"""Latent probes: how much of the class a code carries, by scikit-learn.

Both probes are fit on the posterior means of the training split and scored
on those of the test split; labels are used here and nowhere in training.

* k-nearest neighbours (k = 5, Euclidean, uniform vote):
  `sklearn.neighbors.KNeighborsClassifier`, which searches a k-d tree or
  ball tree in chunks, so 60,000 training codes against 10,000 test codes
  never hold a 60,000 x 10,000 distance matrix.
* multinomial logistic regression on standardised codes (training mean and
  deviation), L2 penalty `l2 * |W|^2` added to the mean cross-entropy:
  `sklearn.linear_model.LogisticRegression` (lbfgs) with
  C = 1 / (2 * l2 * N), the same objective in scikit-learn's scaling.
"""

import numpy as np
from sklearn import linear_model
from sklearn import neighbors
from sklearn import pipeline
from sklearn import preprocessing

KNN_NEIGHBOURS = 5
LOGREG_L2 = 1e-4


def knn_accuracy(train_codes: np.ndarray, train_labels: np.ndarray,
                 test_codes: np.ndarray, test_labels: np.ndarray,
                 k: int = KNN_NEIGHBOURS) -> float:
  """Test accuracy of a k-nearest-neighbour vote."""
  probe = neighbors.KNeighborsClassifier(
      n_neighbors=min(k, len(train_codes)))
  probe.fit(np.asarray(train_codes, np.float64), np.asarray(train_labels))
  return float(probe.score(np.asarray(test_codes, np.float64),
                           np.asarray(test_labels)))


def logistic_regression_accuracy(train_codes: np.ndarray,
                                 train_labels: np.ndarray,
                                 test_codes: np.ndarray,
                                 test_labels: np.ndarray,
                                 l2: float = LOGREG_L2) -> float:
  """Test accuracy of a multinomial logistic regression on the codes."""
  x = np.asarray(train_codes, np.float64)
  probe = pipeline.make_pipeline(
      preprocessing.StandardScaler(),
      linear_model.LogisticRegression(C=1.0 / (2.0 * l2 * len(x)),
                                      max_iter=1000))
  probe.fit(x, np.asarray(train_labels))
  return float(probe.score(np.asarray(test_codes, np.float64),
                           np.asarray(test_labels)))
