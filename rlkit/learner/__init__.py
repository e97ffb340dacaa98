"""FSDP2 learners: policy log-probs, the policy update and weight export."""
