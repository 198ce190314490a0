"""Real-robot adapters (ROS-free): how resrl's command/state contract maps onto franka_ros2 and
ur_robot_driver. The rclpy side is resrl.nodes.robot_bridge_node."""
