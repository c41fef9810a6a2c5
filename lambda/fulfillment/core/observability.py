"""The one Logger and Metrics of the function, and how it counts (the names are in contract.py).

Service name, namespace and log level come from the standard POWERTOOLS_* variables.
"""

from __future__ import annotations

import logging
import warnings

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from fulfillment.contract import MetricName
from fulfillment.core.settings import metrics_namespace

logger = Logger()
metrics = Metrics(namespace=metrics_namespace())
# A page view (sign-up GET, hand-off lookup) or a lifecycle batch counted by dimensioned
# single metrics adds nothing to the default set: expected, so no UserWarning on stderr in
# every new container (the filter Powertools documents for this warning).
warnings.filterwarnings("ignore", "No application metrics to publish")

# botocore's DEBUG lines print request parameters, and ResolveCustomer's only parameter is the
# registration token. Keep the AWS SDK's own loggers above DEBUG whatever the function's level.
for _name in ("botocore", "boto3", "urllib3"):
    logging.getLogger(_name).setLevel(logging.INFO)


def count(name: MetricName) -> None:
    """Add one to ``name`` in this invocation's metric blob (dimension: service only)."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def count_by(name: MetricName, dimension: str, value: str, number: int = 1) -> None:
    """Emit ``number`` of ``name`` with an extra bounded dimension, in a blob of its own."""
    count_with(name, {dimension: value}, number)


def count_with(name: MetricName, dimensions: dict[str, str], number: int = 1) -> None:
    """Emit ``number`` of ``name`` with several extra bounded dimensions, in a blob of its
    own."""
    with single_metric(
        name=name,
        unit=MetricUnit.Count,
        value=number,
        namespace=metrics.namespace,
    ) as metric:
        for dimension, value in dimensions.items():
            metric.add_dimension(name=dimension, value=value)
