"""The sim's learned base policy (LeRobot ACT on noisy teleop demos): see resrl.base_policy.train."""
