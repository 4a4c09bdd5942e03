//! The CloudWatch adapter: [`MetricsSink`] on the AWS SDK's CloudWatch
//! client. One [`Batch`] is one `PutMetricData` call; `crate::metrics`
//! makes the batches fit CloudWatch's limits.

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};

use crate::error::Error;
use crate::metrics::{Batch, MetricsSink};

#[derive(Debug, Clone)]
pub struct CloudWatch {
    client: Client,
}

impl CloudWatch {
    pub fn new(client: Client) -> Self {
        CloudWatch { client }
    }

    pub fn from_conf(config: &aws_config::SdkConfig) -> Self {
        CloudWatch::new(Client::new(config))
    }
}

impl MetricsSink for CloudWatch {
    async fn put(&self, batch: &Batch) -> Result<(), Error> {
        let data = batch
            .data
            .iter()
            .map(|d| {
                MetricDatum::builder()
                    .metric_name(&d.name)
                    .value(d.value)
                    .unit(StandardUnit::from(d.unit.as_str()))
                    .timestamp(DateTime::from_secs(d.timestamp.timestamp()))
                    .set_dimensions(Some(
                        d.dimensions
                            .iter()
                            .map(|(name, value)| Dimension::builder().name(name).value(value).build())
                            .collect(),
                    ))
                    .build()
            })
            .collect();
        self.client
            .put_metric_data()
            .namespace(batch.namespace)
            .set_metric_data(Some(data))
            .send()
            .await
            .map_err(|e| Error::aws("cloudwatch:PutMetricData", e))?;
        Ok(())
    }
}
