"""The client half: calling another service's tools and resources, with pooling, retries, a breaker."""

from common.client.inprocess import WSGIAdapter
from common.client.monitor import DependencyMonitor
from common.client.retry import RetryPolicy
from common.client.service import ServiceClient
from common.client.tls import ClientTLS
from common.client.transport import ClientSettings, EventStream

__all__ = ["ClientSettings", "ClientTLS", "DependencyMonitor", "EventStream", "RetryPolicy", "ServiceClient",
           "WSGIAdapter"]
