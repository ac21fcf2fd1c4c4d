"""A four-question SQuAD-layout file: two articles, three paragraphs (fixtures in conftest)."""

SQUAD = {
    "version": "1.1",
    "data": [
        {
            "title": "Riverside_Mill",
            "paragraphs": [
                {
                    "context": "The Riverside Mill was founded in 1901 by Anna Berg. It spun "
                    "wool for the town of Elmwood until it closed in 1968.",
                    "qas": [
                        {
                            "id": "q1",
                            "question": "In which year was the Riverside Mill founded?",
                            "answers": [{"text": "1901", "answer_start": 34}],
                        },
                        {
                            "id": "q2",
                            "question": "Who founded the Riverside Mill?",
                            "answers": [{"text": "Anna Berg", "answer_start": 42}],
                        },
                    ],
                },
                {
                    "context": "The mill's water wheel was replaced by a steam engine in 1923, "
                    "and by electric motors in 1950.",
                    "qas": [
                        {
                            "id": "q3",
                            "question": "What replaced the mill's water wheel in 1923?",
                            "answers": [{"text": "a steam engine", "answer_start": 40}],
                        }
                    ],
                },
            ],
        },
        {
            "title": "Elmwood_Lake",
            "paragraphs": [
                {
                    "context": "Elmwood Lake is a reservoir north of the town, built in 1932 "
                    "to supply drinking water. It is 4 kilometres long.",
                    "qas": [
                        {
                            "id": "q4",
                            "question": "How long is Elmwood Lake?",
                            "answers": [{"text": "4 kilometres", "answer_start": 99}],
                        }
                    ],
                }
            ],
        },
    ],
}
