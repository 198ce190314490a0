"""ROS 2 glue: message conversions, parameters, QoS and node entry points. Imports rclpy."""
