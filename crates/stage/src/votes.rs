//! The room's predictions: one vote per audience browser for the question the run is asking,
//! counted for the presenter's page. Only the open question's votes are kept, in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

/// The most browsers counted for one question.
const MAX_VOTERS: usize = 500;

/// The votes for the latest question, and a signal for the presenter's page watching them.
pub(crate) struct Votes {
    tally: Mutex<Tally>,
    changed: watch::Sender<u64>,
}

#[derive(Default)]
struct Tally {
    /// The question (its event's index in the run) the votes are for.
    question: Option<usize>,
    /// Each browser's choice: a browser that votes again changes its vote.
    by_voter: HashMap<String, usize>,
}

impl Votes {
    /// No question asked yet.
    pub fn new() -> Self {
        Self {
            tally: Mutex::new(Tally::default()),
            changed: watch::channel(0).0,
        }
    }

    /// Records `voter`'s `choice` for `question`, which has `choices` choices; `false` when
    /// the choice is not one of them. A new question starts a new count.
    pub fn vote(&self, question: usize, choices: usize, voter: &str, choice: usize) -> bool {
        if choice >= choices || voter.is_empty() || voter.len() > 64 {
            return false;
        }
        let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        if tally.question != Some(question) {
            *tally = Tally {
                question: Some(question),
                by_voter: HashMap::new(),
            };
        }
        // A room, not the internet: past this many browsers a new one is not counted, so that
        // made-up voter ids cannot grow the tally without bound.
        if tally.by_voter.len() >= MAX_VOTERS && !tally.by_voter.contains_key(voter) {
            return false;
        }
        tally.by_voter.insert(voter.to_owned(), choice);
        drop(tally);
        self.changed.send_modify(|n| *n += 1);
        true
    }

    /// How many chose each of `question`'s `choices` (zeros for a question nobody voted on).
    pub fn counts(&self, question: usize, choices: usize) -> Vec<u32> {
        let tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        let mut counts = vec![0; choices];
        if tally.question == Some(question) {
            for &choice in tally.by_voter.values() {
                counts[choice] += 1;
            }
        }
        counts
    }

    /// Wakes when a vote arrives.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_vote_per_browser_for_the_open_question_only() {
        let votes = Votes::new();
        assert!(votes.vote(7, 4, "a", 2));
        assert!(votes.vote(7, 4, "b", 2));
        assert!(votes.vote(7, 4, "a", 1), "a browser may change its mind");
        assert!(!votes.vote(7, 4, "c", 4), "not a choice");
        assert_eq!(votes.counts(7, 4), [0, 1, 1, 0]);
        assert!(votes.vote(9, 2, "a", 0));
        assert_eq!(votes.counts(9, 2), [1, 0], "a new question, a new count");
        assert_eq!(votes.counts(7, 4), [0, 0, 0, 0]);
        for voter in 0..MAX_VOTERS {
            votes.vote(11, 2, &voter.to_string(), 0);
        }
        assert!(
            !votes.vote(11, 2, "one too many", 1),
            "the count is bounded"
        );
        assert!(
            votes.vote(11, 2, "0", 1),
            "a counted browser may still change its vote"
        );
    }
}
