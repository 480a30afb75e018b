"""CloudWatch: the Logs API now; metrics come with training-job metrics."""
