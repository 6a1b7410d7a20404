//! The `Alert` header: a response carries at most one, and this is the one place that
//! decides which. Four things may warn a client; when several do, the first of this list
//! wins, whatever order they were offered in:
//!
//! 1. **the service has ended** (`eos` is past, `hard-eol`): nothing else matters any more;
//! 2. **the Sync node's own alert** (`X-Weave-Alert`, passed on as it is): it is about the
//!    data being read right now, and may itself announce the end of Sync;
//! 3. **the service will end** (`eos` ahead, `soft-eol`): on every response until then, so
//!    a client that misses it once sees it on the next one;
//! 4. **`X-Client-State` is deprecated**, for a request that sent it: advice.

use crate::message::Response;

/// One warning a response may carry, with its `Alert` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Alert {
    ServiceEnded(String),
    SyncNode(String),
    ServiceEnding(String),
    ClientStateDeprecated(String),
}

impl Alert {
    /// Its place in the module's list: lower wins.
    fn rank(&self) -> u8 {
        match self {
            Alert::ServiceEnded(_) => 1,
            Alert::SyncNode(_) => 2,
            Alert::ServiceEnding(_) => 3,
            Alert::ClientStateDeprecated(_) => 4,
        }
    }
}

/// Gives `resp` this alert unless it already carries one that ranks as high or higher.
pub(crate) fn offer(resp: &mut Response, alert: Alert) {
    let rank = alert.rank();
    if resp.alert_rank.is_some_and(|held| held <= rank) {
        return;
    }
    let (Alert::ServiceEnded(value)
    | Alert::SyncNode(value)
    | Alert::ServiceEnding(value)
    | Alert::ClientStateDeprecated(value)) = alert;
    resp.set("Alert", value);
    resp.alert_rank = Some(rank);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> [Alert; 4] {
        [
            Alert::ServiceEnded("ended".into()),
            Alert::SyncNode("node".into()),
            Alert::ServiceEnding("ending".into()),
            Alert::ClientStateDeprecated("deprecated".into()),
        ]
    }

    fn alerts_of(r: &Response) -> Vec<&str> {
        r.headers
            .iter()
            .filter(|(n, _)| *n == "Alert")
            .map(|(_, v)| v.as_ref())
            .collect()
    }

    #[test]
    fn the_most_important_wins_in_any_order() {
        let alerts = all();
        // Every ordered pair: the lower rank wins, and there is only one header.
        for (i, first) in alerts.iter().enumerate() {
            for (j, second) in alerts.iter().enumerate() {
                let mut r = Response::new(200);
                offer(&mut r, first.clone());
                offer(&mut r, second.clone());
                let winner = if i <= j { first } else { second };
                let want = match winner {
                    Alert::ServiceEnded(v)
                    | Alert::SyncNode(v)
                    | Alert::ServiceEnding(v)
                    | Alert::ClientStateDeprecated(v) => v.as_str(),
                };
                assert_eq!(alerts_of(&r), [want], "{first:?} then {second:?}");
            }
        }
    }
}
