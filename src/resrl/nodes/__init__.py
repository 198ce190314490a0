"""Thin rclpy nodes: declare parameters, wire topics, call the ROS-free modules."""
