//! Built-in vocabularies. Names and places are common Indian ones; nothing
//! looks like real personal data (email and phone are always empty).

pub(super) const TOPICS: &[&str] = &[
    "Data Basics",
    "Foundational Numeracy",
    "Classroom Management",
    "Digital Literacy",
    "Health, Hygiene and Nutrition",
    "Inclusive Education",
    "Science Through Play",
    "Early Childhood Care",
    "School Safety",
    "Art Integrated Learning",
    "Teaching English",
    "Reading Skills",
    "Assessment for Learning",
    "Environmental Studies",
    "Life Skills",
    "Toy Based Pedagogy",
];

pub(super) const FIRST_NAMES: &[&str] = &[
    "Aarav", "Aditi", "Akash", "Ananya", "Anil", "Arjun", "Asha", "Deepa", "Divya", "Ganesh",
    "Gita", "Harish", "Isha", "Kavya", "Kiran", "Lakshmi", "Mahesh", "Manju", "Meera", "Mohan",
    "Neha", "Nikhil", "Pooja", "Prakash", "Priya", "Rahul", "Rajesh", "Ramesh", "Revathi", "Rohan",
    "Sanjay", "Shalini", "Sneha", "Sowmya", "Sunil", "Suresh", "Swati", "Uma", "Vijay", "Vikram",
];

pub(super) const LAST_NAMES: &[&str] = &[
    "Agarwal", "Bhat", "Das", "Desai", "Gupta", "Iyer", "Jain", "Joshi", "Kapoor", "Kulkarni",
    "Kumar", "Menon", "Mishra", "Nair", "Naidu", "Patel", "Pillai", "Rao", "Reddy", "Sharma",
    "Singh", "Verma", "Yadav",
];

pub(super) const PLACES: &[(&str, &[&str])] = &[
    (
        "Karnataka",
        &["Bengaluru Urban", "Mysuru", "Belagavi", "Kalaburagi"],
    ),
    (
        "Kerala",
        &["Thiruvananthapuram", "Ernakulam", "Thrissur", "Kozhikode"],
    ),
    ("Tamil Nadu", &["Chennai", "Coimbatore", "Madurai", "Salem"]),
    ("Maharashtra", &["Pune", "Nagpur", "Nashik", "Aurangabad"]),
    ("Uttar Pradesh", &["Lucknow", "Varanasi", "Agra", "Jhansi"]),
    ("Rajasthan", &["Jaipur", "Jodhpur", "Udaipur", "Ajmer"]),
    (
        "Andhra Pradesh",
        &["Guntur", "Krishna", "Visakhapatnam", "Chittoor"],
    ),
    ("Gujarat", &["Ahmedabad", "Surat", "Vadodara", "Rajkot"]),
    (
        "Madhya Pradesh",
        &["Bhopal", "Indore", "Gwalior", "Jabalpur"],
    ),
    ("Assam", &["Kamrup", "Dibrugarh", "Jorhat", "Nagaon"]),
];

pub(super) const BLOCK_SUFFIXES: &[&str] = &["North", "South", "East", "West", "Central", "Rural"];

pub(super) const BOARDS: &[&str] = &[
    "CBSE",
    "ICSE",
    "State (Karnataka)",
    "State (Kerala)",
    "IGOT-Health",
];
